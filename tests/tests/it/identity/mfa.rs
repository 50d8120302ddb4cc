//! TOTP: enrollment, MFA login, recovery codes, and secrets sealed at rest.

use super::*;

#[tokio::test]
async fn totp_enrollment_mfa_login_and_recovery_codes() {
    for storage in storages() {
        let (sandbox, mut client) = sandbox(storage).await;
        let signed_up = sign_up(&mut client, "mfa@example.com").await;
        let access = signed_up.tokens.unwrap().access_token;
        let recovery_codes =
            enrollment_is_confirmed_with_a_current_code(&mut client, &access).await;
        let (code, signed_in) =
            a_sign_in_asks_for_the_second_factor_and_takes_a_recovery_code_once(
                &mut client,
                &recovery_codes,
            )
            .await;
        a_used_recovery_code_is_refused(&mut client, code).await;
        disabling_needs_the_password(&mut client, &signed_in).await;
        sandbox.shutdown().await.unwrap();
    }
}

async fn enrollment_is_confirmed_with_a_current_code(
    client: &mut Client,
    access: &str,
) -> Vec<String> {
    let enrollment = client
        .enroll_totp(authed(pb::EnrollTotpRequest {}, access))
        .await
        .unwrap()
        .into_inner();
    assert!(enrollment.otpauth_uri.starts_with("otpauth://totp/"));
    assert_eq!(enrollment.digits, 6);
    let secret = totp::TotpSecret::from_base32(&enrollment.secret).unwrap();
    let now = chrono::Utc::now().timestamp();
    let wrong = client
        .confirm_totp(authed(
            pb::ConfirmTotpRequest {
                code: "000000".into(),
            },
            access,
        ))
        .await;
    if totp::code_at(&secret, now) != "000000" {
        assert_eq!(wrong.unwrap_err().code(), Code::InvalidArgument);
    }
    let confirmed = client
        .confirm_totp(authed(
            pb::ConfirmTotpRequest {
                code: totp::code_at(&secret, now),
            },
            access,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(confirmed.recovery_codes.len(), 10);
    assert!(confirmed.user.unwrap().mfa_enabled);
    confirmed.recovery_codes
}

async fn a_sign_in_asks_for_the_second_factor_and_takes_a_recovery_code_once(
    client: &mut Client,
    recovery_codes: &[String],
) -> (String, pb::AuthTokens) {
    // Sign-in now asks for the second factor.
    let challenge = match login(client, "mfa@example.com", PASSWORD)
        .await
        .unwrap()
        .result
    {
        Some(pb::login_response::Result::MfaChallenge(challenge)) => challenge,
        other => panic!("expected an MFA challenge, got {other:?}"),
    };
    let bad = client
        .complete_mfa_login(pb::CompleteMfaLoginRequest {
            mfa_token: challenge.mfa_token.clone(),
            factor: Some(pb::complete_mfa_login_request::Factor::RecoveryCode(
                "aaaa-aaaa-aaaa-aaaa".into(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::Unauthenticated);
    let code = recovery_codes[0].clone();
    let signed_in = client
        .complete_mfa_login(pb::CompleteMfaLoginRequest {
            mfa_token: challenge.mfa_token.clone(),
            factor: Some(pb::complete_mfa_login_request::Factor::RecoveryCode(
                code.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner()
        .tokens
        .unwrap();
    assert!(signed_in.mfa_authenticated);
    // The challenge and the recovery code are both single-use.
    let replay = client
        .complete_mfa_login(pb::CompleteMfaLoginRequest {
            mfa_token: challenge.mfa_token,
            factor: Some(pb::complete_mfa_login_request::Factor::RecoveryCode(
                code.clone(),
            )),
        })
        .await
        .unwrap_err();
    assert_eq!(replay.code(), Code::InvalidArgument);
    (code, signed_in)
}

async fn a_used_recovery_code_is_refused(client: &mut Client, code: String) {
    let second = match login(client, "mfa@example.com", PASSWORD)
        .await
        .unwrap()
        .result
    {
        Some(pb::login_response::Result::MfaChallenge(challenge)) => challenge,
        other => panic!("expected an MFA challenge, got {other:?}"),
    };
    let used_code = client
        .complete_mfa_login(pb::CompleteMfaLoginRequest {
            mfa_token: second.mfa_token,
            factor: Some(pb::complete_mfa_login_request::Factor::RecoveryCode(code)),
        })
        .await
        .unwrap_err();
    assert_eq!(used_code.code(), Code::Unauthenticated);
}

async fn disabling_needs_the_password(client: &mut Client, signed_in: &pb::AuthTokens) {
    // Disabling needs the password.
    let refused = client
        .disable_totp(authed(
            pb::DisableTotpRequest {
                current_password: "wrong password!!".into(),
            },
            &signed_in.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    let disabled = client
        .disable_totp(authed(
            pb::DisableTotpRequest {
                current_password: PASSWORD.into(),
            },
            &signed_in.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!disabled.user.unwrap().mfa_enabled);
}

/// What Ada's and Bob's enrollments left: their secrets, Ada's confirmed at
/// `now`, Bob's not.
struct Enrolled {
    ada_secret: String,
    bob_secret: String,
    ada_totp: totp::TotpSecret,
    now: i64,
}

#[tokio::test]
async fn totp_secrets_are_sealed_at_rest_and_survive_a_key_rotation() {
    for storage in storages() {
        let sandbox = sealed_with(storage, None, sealing(&[("k1", 1)], "k1")).await;
        let enrolled = ada_enrolls_and_bob_starts_enrolling(&sandbox).await;
        secrets_are_stored_sealed_never_in_clear(&sandbox, storage, &enrolled).await;

        // Rotation: a new current key; every secret is sealed again at start.
        let stopped = sandbox.stop().await.unwrap();
        let rotate = sealing(&[("k1", 1), ("k2", 2)], "k2");
        let sandbox = sealed_with(storage, Some(stopped), rotate).await;
        for value in stored_totp(&sandbox).await {
            assert!(value.starts_with("sealed:v1:k2:"), "{value}");
        }
        // The old key retired: both secrets still open.
        let stopped = sandbox.stop().await.unwrap();
        let retire = sealing(&[("k2", 2)], "k2");
        let sandbox = sealed_with(storage, Some(stopped), retire).await;
        both_secrets_still_open(&sandbox, &enrolled).await;
        sandbox.shutdown().await.unwrap();
    }
}

/// A sandbox sealing with `keys`, resuming `stopped` if given.
async fn sealed_with(
    storage: Storage,
    stopped: Option<tenantry_testkit::Stopped>,
    keys: impl FnOnce(&mut tenantry::config::Config) + Send + 'static,
) -> Sandbox {
    let mut builder = Sandbox::builder().storage(storage);
    if let Some(stopped) = stopped {
        builder = builder.resume(stopped);
    }
    builder.configure(keys).start().await.unwrap()
}

async fn ada_enrolls_and_bob_starts_enrolling(sandbox: &Sandbox) -> Enrolled {
    let mut client = Client::new(sandbox.channel().await.unwrap());
    let ada = sign_up(&mut client, "ada@example.com")
        .await
        .tokens
        .unwrap()
        .access_token;
    let bob = sign_up(&mut client, "bob@example.com")
        .await
        .tokens
        .unwrap()
        .access_token;
    let ada_secret = client
        .enroll_totp(authed(pb::EnrollTotpRequest {}, &ada))
        .await
        .unwrap()
        .into_inner()
        .secret;
    let now = chrono::Utc::now().timestamp();
    let ada_totp = totp::TotpSecret::from_base32(&ada_secret).unwrap();
    client
        .confirm_totp(authed(
            pb::ConfirmTotpRequest {
                code: totp::code_at(&ada_totp, now),
            },
            &ada,
        ))
        .await
        .unwrap();
    let bob_secret = client
        .enroll_totp(authed(pb::EnrollTotpRequest {}, &bob))
        .await
        .unwrap()
        .into_inner()
        .secret;
    Enrolled {
        ada_secret,
        bob_secret,
        ada_totp,
        now,
    }
}

async fn secrets_are_stored_sealed_never_in_clear(
    sandbox: &Sandbox,
    storage: Storage,
    enrolled: &Enrolled,
) {
    let Enrolled {
        ada_secret,
        bob_secret,
        ..
    } = enrolled;
    let stored = stored_totp(sandbox).await;
    assert_eq!(stored.len(), 2);
    for (value, secret) in stored.iter().zip([ada_secret, bob_secret]) {
        assert!(value.starts_with("sealed:v1:k1:"), "{value}");
        assert!(
            !value.contains(secret.as_str()),
            "a secret is stored in clear"
        );
    }
    if storage == Storage::Sqlite {
        // The database file, its write-ahead log and anything beside.
        for entry in std::fs::read_dir(sandbox.database.dir()).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(ada_secret) && !text.contains(bob_secret));
        }
    }
}

/// Ada signs in with her next code, and Bob confirms his enrollment.
async fn both_secrets_still_open(sandbox: &Sandbox, enrolled: &Enrolled) {
    let mut client = Client::new(sandbox.channel().await.unwrap());
    let challenge = match login(&mut client, "ada@example.com", PASSWORD)
        .await
        .unwrap()
        .result
    {
        Some(pb::login_response::Result::MfaChallenge(challenge)) => challenge,
        other => panic!("expected an MFA challenge, got {other:?}"),
    };
    // The next step's code: the one used to confirm is spent.
    client
        .complete_mfa_login(pb::CompleteMfaLoginRequest {
            mfa_token: challenge.mfa_token,
            factor: Some(pb::complete_mfa_login_request::Factor::TotpCode(
                totp::code_at(&enrolled.ada_totp, enrolled.now + 30),
            )),
        })
        .await
        .unwrap();
    let bob = people::tokens(
        login(&mut client, "bob@example.com", PASSWORD)
            .await
            .unwrap(),
    )
    .access_token;
    let bob_totp = totp::TotpSecret::from_base32(&enrolled.bob_secret).unwrap();
    client
        .confirm_totp(authed(
            pb::ConfirmTotpRequest {
                code: totp::code_at(&bob_totp, chrono::Utc::now().timestamp()),
            },
            &bob,
        ))
        .await
        .unwrap();
}
