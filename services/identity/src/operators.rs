//! The first platform operators of a real deployment (`--platform-operator EMAIL`): at start,
//! each named person is made sure to be a user of the platform organization holding
//! `ROLE_PLATFORM_OPERATOR`. They then create partner organizations and their first admins
//! through the RPCs. Idempotent, and it never removes anyone nor undoes a decision made since
//! (a user an operator disabled stays disabled).

use crate::api::Identity;
use crate::domain::{NewUser, Result, Role, UserKind, UserState, validate};
use crate::store::UserFilter;

/// Makes sure each of `emails` is a platform operator. A person of the platform's domain is
/// a member; anyone else (a work email of another domain) a guest of the platform.
pub async fn ensure(identity: &Identity, platform_domain: &str, emails: &[String]) -> Result<()> {
    let org = identity.platform_org;
    for raw in emails {
        let (email, domain) = validate::work_email(raw).map_err(|e| {
            crate::domain::IdentityError::Invalid(cosell_platform::ApiError::invalid_field(
                "platform_operator",
                format!("`{raw}`: {e}"),
            ))
        })?;
        let filter = UserFilter {
            email: Some(email.clone()),
            ..UserFilter::default()
        };
        let existing = identity
            .store
            .list_users(org, &filter, None, 1)
            .await?
            .into_iter()
            .next();
        let user = match existing {
            Some(u) => u,
            None => {
                let kind = if domain == platform_domain {
                    UserKind::Member
                } else {
                    UserKind::Guest
                };
                let u = identity
                    .store
                    .create_user(
                        org,
                        &NewUser {
                            email: email.clone(),
                            given_name: String::new(),
                            family_name: String::new(),
                            kind,
                        },
                    )
                    .await?;
                tracing::info!(%email, kind = kind.as_str(), "platform operator created");
                u
            }
        };
        if user.state != UserState::Active {
            tracing::warn!(%email, "platform operator named at start is disabled; left disabled");
        }
        identity
            .store
            .assign_role(org, user.id, Role::PlatformOperator, None)
            .await?;
        identity.invalidate(user.id);
    }
    Ok(())
}
