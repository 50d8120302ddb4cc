//! `tenantry service-accounts`: the deployment's machine identities and
//! their client credentials (platform administrators only, as in the
//! contract). A credential's client secret is printed once, when it is
//! made.

use clap::Subcommand;
use futures::TryStreamExt as _;
use tenantry_client::pb::identity::v1 as identity;
use tenantry_client::{Client, Error, paginate};

use super::{named, print_list, print_one};
use crate::cli::remote::output::Format;

/// What `tenantry service-accounts` does.
#[derive(Debug, Subcommand)]
pub enum ServiceAccountsCommand {
    /// The service accounts of the deployment, oldest first.
    List,
    /// Create a service account.
    Create {
        /// Its display name.
        display_name: String,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// One service account (id or `serviceAccounts/{id}`).
    Get { service_account: String },
    /// Delete a service account and all of its credentials, for good.
    Delete { service_account: String },
    /// The client credentials of a service account.
    #[command(subcommand, alias = "credential")]
    Credentials(CredentialsCommand),
}

/// What `tenantry service-accounts credentials` does.
#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Create a credential; its client secret is printed once.
    Create {
        /// The service account (id or `serviceAccounts/{id}`).
        service_account: String,
        /// A label for the credential.
        #[arg(long)]
        display_name: Option<String>,
    },
    /// The credentials of a service account, without their secrets.
    List {
        /// The service account (id or `serviceAccounts/{id}`).
        service_account: String,
    },
    /// Delete a credential (`serviceAccounts/{id}/credentials/{id}`): its
    /// secret stops working at once.
    Revoke { credential: String },
}

const ACCOUNT_COLUMNS: &[&str] = &["name", "displayName", "description", "lastUsedTime"];
const CREDENTIAL_COLUMNS: &[&str] = &[
    "name",
    "clientId",
    "displayName",
    "expireTime",
    "lastUsedTime",
];

fn account_name(text: &str) -> String {
    named("serviceAccounts/", text)
}

/// Runs a service accounts command.
pub async fn service_accounts(
    format: Format,
    client: &Client,
    command: ServiceAccountsCommand,
) -> anyhow::Result<()> {
    let mut accounts = client.service_accounts();
    match command {
        ServiceAccountsCommand::List => {
            let items: Vec<_> = client
                .list_service_accounts(Default::default())
                .try_collect()
                .await?;
            print_list(format, &items, ACCOUNT_COLUMNS);
        }
        ServiceAccountsCommand::Create {
            display_name,
            description,
        } => {
            let response = accounts
                .create_service_account(identity::CreateServiceAccountRequest {
                    service_account: Some(identity::ServiceAccount {
                        display_name,
                        description: description.unwrap_or_default(),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            let account = response.service_account.unwrap_or_default();
            print_one(format, &account, ACCOUNT_COLUMNS);
        }
        ServiceAccountsCommand::Get { service_account } => {
            let response = accounts
                .get_service_account(identity::GetServiceAccountRequest {
                    name: account_name(&service_account),
                })
                .await
                .map_err(Error::from)?
                .into_inner();
            let account = response.service_account.unwrap_or_default();
            print_one(format, &account, ACCOUNT_COLUMNS);
        }
        ServiceAccountsCommand::Delete { service_account } => {
            let name = account_name(&service_account);
            accounts
                .delete_service_account(identity::DeleteServiceAccountRequest {
                    name: name.clone(),
                    ..Default::default()
                })
                .await
                .map_err(Error::from)?;
            eprintln!("deleted {name}");
        }
        ServiceAccountsCommand::Credentials(command) => {
            credentials(format, client, command).await?;
        }
    }
    Ok(())
}

async fn credentials(
    format: Format,
    client: &Client,
    command: CredentialsCommand,
) -> anyhow::Result<()> {
    let mut accounts = client.service_accounts();
    match command {
        CredentialsCommand::Create {
            service_account,
            display_name,
        } => {
            let response = accounts
                .create_service_account_credential(
                    identity::CreateServiceAccountCredentialRequest {
                        parent: account_name(&service_account),
                        credential: Some(identity::ServiceAccountCredential {
                            display_name: display_name.unwrap_or_default(),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                )
                .await
                .map_err(Error::from)?
                .into_inner();
            print_one(
                format,
                &response,
                &["credential.name", "credential.clientId", "clientSecret"],
            );
            eprintln!("store the client secret now: it is not shown again");
        }
        CredentialsCommand::List { service_account } => {
            let request = identity::ListServiceAccountCredentialsRequest {
                parent: account_name(&service_account),
                ..Default::default()
            };
            let items: Vec<_> = paginate(request, move |request| {
                let mut accounts = accounts.clone();
                async move { accounts.list_service_account_credentials(request).await }
            })
            .try_collect()
            .await?;
            print_list(format, &items, CREDENTIAL_COLUMNS);
        }
        CredentialsCommand::Revoke { credential } => {
            accounts
                .delete_service_account_credential(
                    identity::DeleteServiceAccountCredentialRequest {
                        name: credential.clone(),
                    },
                )
                .await
                .map_err(Error::from)?;
            eprintln!("revoked {credential}");
        }
    }
    Ok(())
}
