//! `lift.matching.v1.MatchingPrivacyService` over tonic: matching's side of a
//! person's access request (docs/privacy.md). It reads every brand's rows, so
//! it needs the `privacy:admin` scope — an operator's key, never a brand's —
//! and, like `MatchingService`, it sits behind matching's own key check, so it
//! refuses anonymous callers even on a server run without authentication.

use lift_domain::AccountId;
use lift_domain::event::MAX_EVENT_ID_LEN;
use lift_domain::validation::{FieldViolation, check_token};
use lift_proto::convert::prelude::*;
use lift_proto::matching::v1 as pb;
use lift_proto::matching::v1::matching_privacy_service_server::{MatchingPrivacyService, MatchingPrivacyServiceServer};
use lift_runtime::auth::Principal;
use lift_runtime::layer::{AuthLayer, AuthService};
use lift_store::privacy::Subject;
use tonic::{Request, Response, Status};

use crate::{Error, Matching};

/// The tonic service type [`Matching::privacy`] returns.
pub type MatchingPrivacyServer = AuthService<MatchingPrivacyServiceServer<Matching>>;

/// The stream `ExportAccount` answers with.
pub type ExportAccountStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<pb::ExportAccountResponse, Status>> + Send>>;

impl Matching {
    /// The privacy export as a tonic server behind matching's key check, for the
    /// same server as [`Matching::grpc`] (`lift_runtime::serve_pair`).
    pub fn privacy(&self) -> MatchingPrivacyServer {
        tower::Layer::layer(&AuthLayer::tenant(self.guard()), MatchingPrivacyServiceServer::new(self.clone()))
    }
}

#[tonic::async_trait]
impl MatchingPrivacyService for Matching {
    type ExportAccountStream = ExportAccountStream;

    /// The whole export is read before the first message is sent, so a
    /// failure part-way never leaves a caller with a truncated export.
    #[tracing::instrument(skip_all)]
    async fn export_account(
        &self,
        req: Request<pb::ExportAccountRequest>,
    ) -> Result<Response<Self::ExportAccountStream>, Status> {
        let key = req.extensions().get::<Principal>().map(|p| p.key_id.clone());
        let r = req.get_ref();
        let mut v = Vec::new();
        let (items, subject) = if !r.visitor_id.is_empty() {
            if r.account.is_some() {
                v.push(FieldViolation::new("visitor_id", "give an account or a visitor_id, not both"));
            }
            check_token(&r.visitor_id, "visitor_id", MAX_EVENT_ID_LEN, &mut v);
            if !v.is_empty() {
                return Err(Error::Invalid(v).into());
            }
            let subject = Subject::Visitor(r.visitor_id.clone()).hash();
            (self.export_visitor(&r.visitor_id, &subject).await?, subject)
        } else {
            let account = AccountId::from_proto(r.account.as_ref(), "account", &mut v);
            let account = match account {
                Some(a) if v.is_empty() => a,
                _ => return Err(Error::Invalid(v).into()),
            };
            (self.export_account(&account).await?, lift_store::privacy::account_hash(&account))
        };
        tracing::info!(
            key = key.as_deref().unwrap_or("-"),
            subject = %subject,
            records = items.len().saturating_sub(1),
            "privacy export of matching's rows"
        );
        Ok(Response::new(Box::pin(futures::stream::iter(items.into_iter().map(Ok)))))
    }
}
