//! Rate limits per plan, 402 for plan limits, previews of invitations,
//! and limits shared through Redis.

use super::*;

/// A server on SQLite whose free plan allows thirty reads a minute and
/// whose gateway six auth calls a minute from one address; Ada and Bob
/// signed up, each with an organization of their own.
struct Plan {
    sandbox: Sandbox,
    rest: Rest,
    ada: SignedUp,
    bob: SignedUp,
    _catalog: tempfile::TempDir,
}

impl Plan {
    async fn start(storage: tenantry_testkit::Storage) -> Plan {
        // A FREE plan with a read limit of 30 a minute.
        let catalog = tempfile::tempdir().unwrap();
        let path = catalog.path().join("plans.toml");
        std::fs::write(
            &path,
            "[plans.free]\ndisplay_name = \"Free\"\ncurrency_code = \"USD\"\n\
             [plans.free.limits.rate_limits_per_minute]\nread = 30\nwrite = 600\nauth = 600\nexpensive = 60\n",
        )
        .unwrap();
        let sandbox = start(storage, move |config| {
            config.gateway.auth_per_address_per_minute = 6;
            config.billing.catalog_file = Some(path);
        })
        .await;
        let rest = Rest::new(sandbox.http_url());
        let ada = sign_up(&rest, "ada@example.com", json!({})).await;
        let bob = sign_up(&rest, "bob@example.com", json!({})).await;
        Plan {
            sandbox,
            rest,
            ada,
            bob,
            _catalog: catalog,
        }
    }

    /// One read, as `who`.
    async fn read_me(&self, who: &SignedUp) -> tenantry_tests::rest::Reply {
        self.rest
            .call("GET", "/v1/me", Some(&who.token), None)
            .await
    }
}

#[tokio::test]
async fn rate_limits_follow_the_plan_answer_429_and_recover() {
    let p = Plan::start(tenantry_testkit::Storage::Sqlite).await;
    the_plan_reaches_billing_and_strangers_do_not_see_it(&p).await;
    let retry = reads_over_the_limit_answer_429_with_when_to_retry(&p).await;
    each_organization_has_its_own_budget_and_reads_recover(&p, retry).await;
    a_burst_of_sign_ins_from_one_address_is_cut_off(&p).await;
    p.sandbox.shutdown().await.unwrap();
}

async fn the_plan_reaches_billing_and_strangers_do_not_see_it(p: &Plan) {
    let Plan { rest, ada, bob, .. } = p;
    // The plan reaches billing with the organization's event.
    let limits = format!("/v1/{}/rateLimits", ada.organization);
    let mut read = Value::Null;
    for _ in 0..200 {
        let reply = rest.call("GET", &limits, Some(&bob.token), None).await;
        assert_eq!(
            reply.status, 404,
            "a stranger does not see another organization's limits"
        );
        let reply = rest.call("GET", &limits, Some(&ada.token), None).await;
        if reply.status == 200 {
            read = reply.body["rateLimitsPerMinute"]["read"].clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(read, "30");
}

/// The Retry-After of the refusal, in seconds.
async fn reads_over_the_limit_answer_429_with_when_to_retry(p: &Plan) -> u64 {
    // Let the reads spent above (at most 2 a 100 ms) come back.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut denied = None;
    for sent in 1..=40 {
        let reply = p.read_me(&p.ada).await;
        if reply.status == 429 {
            denied = Some((sent, reply));
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.header("ratelimit-limit"), Some("30"));
        let remaining: u64 = reply
            .header("ratelimit-remaining")
            .unwrap()
            .parse()
            .unwrap();
        assert!(remaining < 30, "{remaining}");
    }
    let (sent, reply) = denied.expect("a read over the limit is refused");
    assert!(sent <= 31, "refused after {sent} reads");
    assert_eq!(reply.body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(reply.reason().as_deref(), Some("RATE_LIMITED"));
    let retry: u64 = reply.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=2).contains(&retry),
        "one read every two seconds: {retry}"
    );
    assert_eq!(reply.header("ratelimit-remaining"), Some("0"));
    assert!(
        reply.body["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
    );
    retry
}

async fn each_organization_has_its_own_budget_and_reads_recover(p: &Plan, retry: u64) {
    // Bob's organization has its own budget.
    assert_eq!(p.read_me(&p.bob).await.status, 200);

    // After Retry-After, Ada reads again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    assert_eq!(p.read_me(&p.ada).await.status, 200);
}

async fn a_burst_of_sign_ins_from_one_address_is_cut_off(p: &Plan) {
    // Sign-in is limited per client address too (two sign-ups so far).
    let mut refused = false;
    for _ in 0..10 {
        let login = p
            .rest
            .call(
                "POST",
                "/v1/auth/login",
                None,
                Some(json!({"email": "ada@example.com", "password": "wrong password"})),
            )
            .await;
        if login.status == 429 {
            assert!(login.header("retry-after").is_some());
            refused = true;
            break;
        }
        assert_eq!(login.status, 401, "{}", login.text);
    }
    assert!(refused, "a burst of sign-ins from one address is cut off");
}

#[tokio::test]
async fn an_invitation_is_previewed_without_signing_in_and_guesses_are_limited() {
    let sandbox = start(tenantry_testkit::Storage::Sqlite, |config| {
        config.gateway.auth_per_address_per_minute = 4;
        config.rbac.mailer.link_base_url = "https://console.example.com".into();
    })
    .await;
    let rest = Rest::new(sandbox.http_url());
    let ada = sign_up(&rest, "ada@example.com", json!({})).await; // 1 of 4
    rest.ok(
        "POST",
        &format!("/v1/{}/invitations", ada.organization),
        Some(&ada.token),
        Some(json!({"email": "bob@example.com"})),
    )
    .await;

    // The mail carries a link to the console's page, and says who invites
    // to what.
    let mail = std::fs::read_dir(sandbox.database.dir().join("mail"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().contains("invitation"))
        .map(|entry| std::fs::read_to_string(entry.path()).unwrap())
        .find(|text| text.contains("To: bob@example.com"))
        .expect("the invitation mail");
    let token = sandbox.mail_token("bob@example.com", "invitation").unwrap();
    assert!(
        mail.contains(&format!(
            "https://console.example.com/invitations/accept?token={token}"
        )),
        "{mail}"
    );
    assert!(mail.contains("ada@example.com invited you"), "{mail}");

    // Anyone holding the token sees what it is for, without signing in.
    let preview = rest
        .ok(
            "POST",
            "/v1/invitations:lookup",
            None,
            Some(json!({"token": token})),
        )
        .await; // 2 of 4
    assert_eq!(
        preview["preview"]["organization"],
        ada.organization.as_str()
    );
    assert_eq!(preview["preview"]["email"], "bob@example.com");
    assert_eq!(preview["preview"]["inviterDisplayName"], "ada@example.com");

    // Guesses are NOT_FOUND, and limited per client address.
    let statuses: Vec<u16> = futures::future::join_all((0..3).map(|_| {
        rest.call(
            "POST",
            "/v1/invitations:lookup",
            None,
            Some(json!({"token": "guess"})),
        )
    }))
    .await
    .iter()
    .map(|reply| reply.status)
    .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, vec![404, 404, 429], "{statuses:?}");
    sandbox.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_plan_limit_answers_402_in_words_not_429() {
    let catalog = tempfile::tempdir().unwrap();
    let path = catalog.path().join("plans.toml");
    std::fs::write(
        &path,
        "[plans.free]\ndisplay_name = \"Free\"\ncurrency_code = \"USD\"\n\
         [plans.free.limits]\nprojects = 2\n",
    )
    .unwrap();
    let sandbox = start(tenantry_testkit::Storage::Sqlite, move |config| {
        config.billing.catalog_file = Some(path);
    })
    .await;
    let rest = Rest::new(sandbox.http_url());
    let ada = sign_up(&rest, "ada@example.com", json!({})).await;
    let create = format!("/v1/{}/projects", ada.organization);
    // The first organization's default project is one of the two.
    rest.ok(
        "POST",
        &create,
        Some(&ada.token),
        Some(json!({"displayName": "Two"})),
    )
    .await;
    let refused = rest
        .call(
            "POST",
            &create,
            Some(&ada.token),
            Some(json!({"displayName": "Three"})),
        )
        .await;
    assert_eq!(refused.status, 402, "{}", refused.text);
    assert_eq!(refused.reason().as_deref(), Some("QUOTA_EXCEEDED"));
    assert_eq!(refused.body["error"]["status"], "RESOURCE_EXHAUSTED");
    assert_eq!(
        refused.body["error"]["message"],
        "the plan allows 2 projects; 2 are in use: upgrade the plan or free one first"
    );
    assert!(
        refused.header("retry-after").is_none(),
        "waiting does not help"
    );
    assert_eq!(
        count_projects(&rest, &ada.organization, &ada.token).await,
        2
    );
    sandbox.shutdown().await.unwrap();
}

/// Two gateways sharing Redis share one budget. Runs when
/// TENANTRY_TEST_REDIS_URL is set (CI sets it).
#[tokio::test]
async fn replicas_share_limits_through_redis() {
    let Ok(redis_url) = std::env::var("TENANTRY_TEST_REDIS_URL") else {
        eprintln!("TENANTRY_TEST_REDIS_URL is not set; skipping the Redis test");
        return;
    };
    let prefix = format!("test-{}:", uuid::Uuid::now_v7());
    let configure = {
        let redis_url = redis_url.clone();
        let prefix = prefix.clone();
        move |config: &mut tenantry::config::Config| {
            config.gateway.redis_url = Some(redis_url);
            config.gateway.redis_key_prefix = prefix;
            config.gateway.auth_per_address_per_minute = 4;
        }
    };
    let first = start(tenantry_testkit::Storage::Sqlite, configure.clone()).await;
    let grpc = format!("http://{}", first.server.grpc_addr);
    let second = Sandbox::builder()
        .services(&[ServiceKind::Gateway])
        .configure(move |config| {
            configure(config);
            config.peers.identity = Some(grpc.clone());
            config.peers.organization = Some(grpc.clone());
            config.peers.rbac = Some(grpc.clone());
            config.peers.billing = Some(grpc.clone());
            config.peers.audit = Some(grpc);
        })
        .start()
        .await
        .unwrap();
    let (a, b) = (Rest::new(first.http_url()), Rest::new(second.http_url()));
    let login = json!({"email": "nobody@example.com", "password": "wrong password"});
    let mut statuses = Vec::new();
    for rest in [&a, &b, &a, &b, &a] {
        statuses.push(
            rest.call("POST", "/v1/auth/login", None, Some(login.clone()))
                .await
                .status,
        );
    }
    assert_eq!(
        statuses,
        vec![401, 401, 401, 401, 429],
        "one budget of four across both replicas"
    );
    second.shutdown().await.unwrap();
    first.shutdown().await.unwrap();
}
