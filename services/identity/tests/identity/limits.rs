//! Input limits through the real server: a filter over the limit its proto comment documents is
//! `INVALID_ARGUMENT` naming the field; a value at the limit reaches the handler as usual.

use cosell_proto::identity as pb;
use cosell_testkit::authed;
use tonic::Code;
use tonic_types::StatusExt;

use crate::harness::*;

/// A well-formed email of exactly `len` characters: a local part of 64, then labels of at most
/// 63 (a dot every 64th character of the domain).
fn email_of(len: usize) -> String {
    let mut domain = "b".repeat(len - 64 - 1 - ".com".len());
    for i in (63..domain.len()).step_by(64) {
        domain.replace_range(i..=i, ".");
    }
    format!("{}@{domain}.com", "a".repeat(64))
}

#[tokio::test]
async fn the_email_filter_of_list_users_is_bounded() {
    let h = Harness::start().await;
    let ada = h.token("ada.admin@contoso.com").await;
    let org = h.org("contoso.com").await;
    let list = |email: String| {
        let mut users = h.users();
        let ada = ada.clone();
        let org = org.clone();
        async move {
            users
                .list_users(authed(
                    &ada,
                    pb::ListUsersRequest {
                        parent: org,
                        email,
                        ..Default::default()
                    },
                ))
                .await
                .map(|r| r.into_inner().users.len())
        }
    };

    // 254 characters, the longest address there is: looked up (nobody has it).
    let longest = email_of(254);
    assert_eq!(longest.len(), 254);
    assert_eq!(list(longest).await.unwrap(), 0);
    assert_eq!(list("uma.user@contoso.com".into()).await.unwrap(), 1);

    let err = expect_err(
        list(email_of(255)).await,
        Code::InvalidArgument,
        "FIELD_TOO_LONG",
    );
    assert_eq!(
        violations(&err),
        [(
            "email".to_owned(),
            "is 255 characters long; at most 254 are accepted".to_owned()
        )]
    );
    assert_eq!(
        err.get_error_details().error_info().unwrap().domain,
        "identity.cosell"
    );
}

#[tokio::test]
async fn sign_in_refuses_an_overlong_email_before_looking_it_up() {
    let h = Harness::start().await;
    let err = expect_err(
        h.tokens()
            .sign_in_with_email(pb::SignInWithEmailRequest {
                email: "x".repeat(100_000),
                organization: String::new(),
            })
            .await,
        Code::InvalidArgument,
        "FIELD_TOO_LONG",
    );
    assert_eq!(
        violations(&err),
        [(
            "email".to_owned(),
            "is 100,000 characters long; at most 254 are accepted".to_owned()
        )]
    );
}
