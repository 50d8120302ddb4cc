//! `tenantry import FILE` and `tenantry export [FILE]`: a deployment's
//! users, organizations, teams, projects, memberships, team members and
//! project grants in and out, through `BulkService` (platform
//! administrators).
//!
//! A file holds one record per line, as the contract's proto3 JSON
//! (`{"user": {"name": "users/0190…", "email": …}}`, `{"membership": …}`);
//! empty lines and lines starting with `#` are skipped. `export` writes the
//! records in an order `import` accepts. An import streams the file in
//! messages of `--batch-size` records; records that exist already are left
//! as they are, so an interrupted import resumes with `--start-line` (the
//! line the error message names) or simply runs again.

use std::io::{BufRead as _, Write as _};

use clap::Args;
use futures::TryStreamExt as _;
use prost::Message as _;
use prost_reflect::{DynamicMessage, SerializeOptions};
use tenantry_client::Client;
use tenantry_client::pb::bulk::v1 as pb;

use super::exit::invalid;
use super::output::{self, Format};

/// `tenantry import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The file of records, one per line (`-` for stdin).
    file: String,
    /// Records per message; each message's records commit together.
    #[arg(long, default_value_t = 1000)]
    batch_size: usize,
    /// Skip the lines before this one (to resume an import).
    #[arg(long, default_value_t = 1)]
    start_line: usize,
}

/// `tenantry export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Where to write the records (stdout when absent or `-`).
    file: Option<String>,
}

/// Parses one line of an import file.
pub fn parse_record(line: &str) -> anyhow::Result<pb::Record> {
    let descriptor = output::pool()
        .get_message_by_name("tenantry.bulk.v1.Record")
        .ok_or_else(|| anyhow::anyhow!("the built-in contracts lack tenantry.bulk.v1.Record"))?;
    let mut deserializer = serde_json::Deserializer::from_str(line);
    let dynamic = DynamicMessage::deserialize(descriptor, &mut deserializer)
        .map_err(|e| invalid(format!("not a record: {e}")))?;
    deserializer
        .end()
        .map_err(|e| invalid(format!("not a record: {e}")))?;
    Ok(pb::Record::decode(dynamic.encode_to_vec().as_slice())?)
}

/// One record as a line of an export file.
pub fn record_line(record: &pb::Record) -> anyhow::Result<String> {
    let descriptor = output::pool()
        .get_message_by_name("tenantry.bulk.v1.Record")
        .ok_or_else(|| anyhow::anyhow!("the built-in contracts lack tenantry.bulk.v1.Record"))?;
    let dynamic = DynamicMessage::decode(descriptor, record.encode_to_vec().as_slice())?;
    let options = SerializeOptions::new().skip_default_fields(true);
    let mut out = Vec::new();
    dynamic.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)?;
    Ok(String::from_utf8(out)?)
}

/// Reads the records of a file from `start_line` on, in messages of
/// `size`, onto `sender`; records each record's line in `lines`. Runs on a
/// blocking thread, as far ahead of the server as the channel allows.
fn read_records(
    file: &str,
    start_line: usize,
    size: usize,
    sender: &tokio::sync::mpsc::Sender<pb::ImportRequest>,
    lines: &std::sync::Mutex<Vec<usize>>,
) -> anyhow::Result<()> {
    let reader: Box<dyn std::io::BufRead> = if file == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::io::BufReader::new(
            std::fs::File::open(file).map_err(|e| invalid(format!("cannot read {file}: {e}")))?,
        ))
    };
    let mut message = pb::ImportRequest::default();
    for (i, line) in reader.lines().enumerate() {
        let number = i + 1;
        let line = line?;
        let text = line.trim();
        if number < start_line || text.is_empty() || text.starts_with('#') {
            continue;
        }
        let record = parse_record(text).map_err(|e| {
            // The records read since the last message sent are not
            // imported: resume from the first of them.
            let resume = if message.records.is_empty() {
                number
            } else {
                let lines = lines.lock().expect("lines");
                lines[lines.len() - message.records.len()]
            };
            invalid(format!(
                "line {number}: {e} (fix it and resume with --start-line {resume})"
            ))
        })?;
        lines.lock().expect("lines").push(number);
        message.records.push(record);
        if message.records.len() == size
            && sender.blocking_send(std::mem::take(&mut message)).is_err()
        {
            return Ok(());
        }
    }
    if !message.records.is_empty() {
        let _ = sender.blocking_send(message);
    }
    Ok(())
}

/// The stream index an import error names (`records[N]`), if it names one.
fn failed_index(error: &tenantry_client::Error) -> Option<usize> {
    let text = error.to_string();
    let start = text.find("records[")? + "records[".len();
    let end = start + text[start..].find(']')?;
    text[start..end].parse().ok()
}

/// Runs `tenantry import`.
pub async fn import(format: Format, client: &Client, args: ImportArgs) -> anyhow::Result<()> {
    let size = args.batch_size.clamp(1, 1000);
    let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let (sender, receiver) = tokio::sync::mpsc::channel(4);
    let reader = {
        let lines = lines.clone();
        tokio::task::spawn_blocking(move || {
            read_records(&args.file, args.start_line, size, &sender, &lines)
        })
    };
    let answer = client
        .bulk()
        .import(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .map_err(tenantry_client::Error::from);
    // A line that does not parse ends the stream early: what came before
    // it is imported, and the error says where to resume.
    let read = reader.await?;
    let answer = match (answer, read) {
        (Err(error), _) => {
            let lines = lines.lock().expect("lines");
            if let Some(index) = failed_index(&error)
                && let Some(line) = lines.get(index)
            {
                // Records of its message before it may not be written:
                // resume from the message's first line (what was written
                // is kept, and found existing).
                let resume = lines[index - index % size];
                eprintln!("import stopped at line {line}: resume with --start-line {resume}");
            }
            return Err(error.into());
        }
        (Ok(_), Err(error)) => return Err(error),
        (Ok(answer), Ok(())) => answer.into_inner(),
    };
    if format == Format::Table {
        eprintln!(
            "imported {} records: {} created, {} existing",
            answer.created + answer.existing,
            answer.created,
            answer.existing
        );
    } else {
        output::print(format, &output::json(&answer), &["created", "existing"]);
    }
    Ok(())
}

/// Runs `tenantry export`.
pub async fn export(client: &Client, args: ExportArgs) -> anyhow::Result<()> {
    let mut out: Box<dyn std::io::Write> = match args.file.as_deref() {
        None | Some("-") => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .map_err(|e| invalid(format!("cannot write {path}: {e}")))?,
        )),
    };
    let mut pages = client
        .bulk()
        .export(pb::ExportRequest {})
        .await
        .map_err(tenantry_client::Error::from)?
        .into_inner();
    let mut written = 0usize;
    while let Some(page) = pages
        .try_next()
        .await
        .map_err(tenantry_client::Error::from)?
    {
        for record in &page.records {
            writeln!(out, "{}", record_line(record)?)?;
            written += 1;
        }
    }
    out.flush()?;
    if args.file.as_deref().is_some_and(|f| f != "-") {
        eprintln!("exported {written} records");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_it_was_written() {
        let line = r#"{"membership":{"name":"organizations/0190a3c4-0000-7000-8000-000000000001/memberships/0190a3c4-0000-7000-8000-000000000002","roles":["roles/admin"]}}"#;
        let record = parse_record(line).unwrap();
        assert!(matches!(record.kind, Some(pb::record::Kind::Membership(_))));
        assert_eq!(record_line(&record).unwrap(), line);
        assert!(parse_record(r#"{"membership": 3}"#).is_err());
        assert!(parse_record(r#"{"user": {}} trailing"#).is_err());
    }
}
