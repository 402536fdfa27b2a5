//! The MPN check (SPEC 5.2): whether each PSC account's MPN ID is one of the organization's
//! (`GetMpnCheck`), and an account admin's correction (`CorrectMpnAssociation`).

use cosell_platform::ApiError;
use cosell_proto::identity as ipb;
use cosell_proto::identity::Role;
use cosell_proto::migration as pb;
use tonic::Request;
use uuid::Uuid;

use super::{Migration, upstream};

impl Migration {
    /// Where `mpn_id` stands for `organization` (SPEC 5.2), with the reason when it fails.
    async fn association(
        &self,
        organization: Uuid,
        mpn_id: &str,
    ) -> Result<(pb::MpnAssociation, String), ApiError> {
        let req = self
            .token
            .request(ipb::LookupMpnIdRequest {
                mpn_id: mpn_id.to_owned(),
            })
            .await?;
        let found = match self.organizations.clone().lookup_mpn_id(req).await {
            Ok(r) => r.into_inner(),
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                ipb::LookupMpnIdResponse::default()
            }
            Err(s) => {
                return Err(upstream("identity", &s));
            }
        };
        let remedy = "an account admin corrects the association (CorrectMpnAssociation) to the organization's vOrg MPN ID or one of its locations";
        if !found.exists {
            return Ok((
                pb::MpnAssociation::Invalid,
                format!("MPN ID {mpn_id} is not known to the platform; {remedy}"),
            ));
        }
        if found.organization != cosell_platform::names::organization(organization) {
            return Ok((
                pb::MpnAssociation::Invalid,
                format!("MPN ID {mpn_id} belongs to another organization; {remedy}"),
            ));
        }
        Ok(match ipb::MpnIdKind::try_from(found.kind) {
            Ok(ipb::MpnIdKind::Location) => (pb::MpnAssociation::Location, String::new()),
            _ => (pb::MpnAssociation::Vorg, String::new()),
        })
    }

    /// Whether each PSC account's MPN association holds (account id -> holds).
    pub(super) async fn associations(
        &self,
        organization: Uuid,
    ) -> Result<std::collections::HashMap<String, bool>, ApiError> {
        let mut out = std::collections::HashMap::new();
        for (account, corrected) in self.store.accounts(organization).await? {
            let id = account.id.clone();
            let checked = self.psc_account(organization, account, corrected).await?;
            out.insert(
                id,
                checked.association != pb::MpnAssociation::Invalid as i32,
            );
        }
        Ok(out)
    }

    /// A PSC account with its MPN association checked.
    pub async fn psc_account(
        &self,
        organization: Uuid,
        account: crate::psc::files::Account,
        corrected: Option<String>,
    ) -> Result<pb::PscAccount, ApiError> {
        let mpn = corrected.clone().unwrap_or_else(|| account.mpn_id.clone());
        let (association, reason) = self.association(organization, &mpn).await?;
        Ok(pb::PscAccount {
            account_id: account.id,
            display_name: account.name,
            exported_mpn_id: account.mpn_id,
            corrected_mpn_id: corrected.unwrap_or_default(),
            mpn_id: mpn,
            association: association as i32,
            reason,
        })
    }

    pub(super) async fn get_mpn_check(
        &self,
        req: Request<pb::GetMpnCheckRequest>,
    ) -> Result<pb::GetMpnCheckResponse, ApiError> {
        let parent = req.get_ref().parent.clone();
        let org = self.authorize(&req, "parent", &parent).await?;
        let mut accounts = Vec::new();
        for (account, corrected) in self.store.accounts(org).await? {
            accounts.push(self.psc_account(org, account, corrected).await?);
        }
        let invalid = accounts
            .iter()
            .filter(|a| a.association == pb::MpnAssociation::Invalid as i32)
            .count() as i64;
        Ok(pb::GetMpnCheckResponse { accounts, invalid })
    }

    pub(super) async fn correct_mpn_association(
        &self,
        req: Request<pb::CorrectMpnAssociationRequest>,
    ) -> Result<pb::CorrectMpnAssociationResponse, ApiError> {
        let r = req.get_ref().clone();
        let org = self
            .authorize_roles(&req, "parent", &r.parent, &[Role::AccountAdmin])
            .await?;
        let mpn = cosell_platform::names::mpn_id(&r.mpn_id)
            .map_err(|e| ApiError::invalid_field("mpn_id", e))?;
        let mpn = mpn.as_str();
        let (association, reason) = self.association(org, mpn).await?;
        if association == pb::MpnAssociation::Invalid {
            return Err(ApiError::invalid_field("mpn_id", reason));
        }
        if !self.store.correct_mpn(org, &r.account_id, mpn).await? {
            return Err(ApiError::not_found(format!(
                "PSC account `{}` of {}",
                r.account_id, r.parent
            )));
        }
        let (account, corrected) = self
            .store
            .accounts(org)
            .await?
            .into_iter()
            .find(|(a, _)| a.id == r.account_id)
            .ok_or_else(|| ApiError::internal("corrected account vanished"))?;
        let account = self.psc_account(org, account, corrected).await?;
        Ok(pb::CorrectMpnAssociationResponse {
            account: Some(account),
        })
    }
}
