//! `lift.privacy.v1.PrivacyService` over tonic: a person's access (export) and
//! erasure requests against ingestion's ledger (SQL or JetStream) and tables,
//! and the audit log of both. The
//! rules of what involves a subject and the erasure itself are in [`scan`], on
//! the store's primitives (`lift_store::privacy`); this is the edge (validation,
//! the caller's identity for the audit log, the append queue, encoding).

mod jetstream;
mod retention;
mod scan;

use lift_proto::convert::prelude::*;
use std::pin::Pin;

use futures::Stream;
use lift_domain::{AccountId, FieldViolation};
use lift_proto::ingest::v1 as ipb;
use lift_proto::privacy::v1 as pb;
use lift_proto::privacy::v1::privacy_service_server::{PrivacyService, PrivacyServiceServer};
use lift_runtime::auth::{Principal, Scope};
use lift_store::privacy::{self as store, Actor, Subject};
use tonic::{Request, Response, Status};

pub use retention::Retained;
pub use scan::Erased;

use crate::service::check_token;
use crate::{Error, Ingest};

/// The tonic service type [`Ingest::privacy`] returns.
pub type PrivacyServer = PrivacyServiceServer<Privacy>;

/// Audit entries per `ListAudit` page at most, and by default.
const MAX_AUDIT_PAGE: u32 = 1_000;
const DEFAULT_AUDIT_PAGE: u32 = 100;

/// What an export from ingestion does not contain: other services' own databases.
pub const NOT_COVERED: [&str; 2] = [
    "scoring: scores, score history, explanations and checkpoints live in scoring's database; `lift privacy export` adds the scores, the score history and the explanations of its changes from scoring",
    "matching: campaign eligibility, offers, rate cards, portfolio seats, standing perks and reports live in matching's database; `lift privacy export` adds them from matching (MatchingPrivacyService)",
];

/// The privacy service: shares the ingestion service's database and append queue.
#[derive(Debug, Clone)]
pub struct Privacy {
    ingest: Ingest,
}

impl Ingest {
    /// The privacy service over this ingestion service's tables, for the same server.
    pub fn privacy(&self) -> PrivacyServer {
        PrivacyServiceServer::new(Privacy { ingest: self.clone() })
    }
}

impl Privacy {
    /// Erases `subject` holding the append queue, so no append of this process
    /// waits on the database lock (or races the marker) meanwhile; wakes
    /// subscribers for the marker. On SQL the events are rewritten as tombstones
    /// ([`scan`]); on JetStream their messages are erased ([`jetstream`]).
    pub async fn erase(&self, subject: &Subject, actor: &Actor) -> Result<Erased, Error> {
        let _queued = self.ingest.append_queue().lock().await;
        let (db, now) = (self.ingest.db(), lift_domain::time::now());
        let erased = match self.ingest.ledger() {
            crate::Ledger::Sql => scan::erase(db, subject, actor, now).await?,
            crate::Ledger::Nats(n) => jetstream::erase(db, n, subject, actor, now).await?,
        };
        self.ingest.erased(erased.marker_offset);
        Ok(erased)
    }
}

/// The wire subject, validated.
fn subject(s: Option<&pb::Subject>) -> Result<Subject, Error> {
    let mut v = Vec::new();
    let out = match s.and_then(|s| s.kind.as_ref()) {
        None => {
            v.push(FieldViolation::new("subject", "an account or a visitor_id is required"));
            None
        }
        Some(pb::subject::Kind::Account(a)) => {
            AccountId::from_proto(Some(a), "subject.account", &mut v).map(Subject::Account)
        }
        Some(pb::subject::Kind::VisitorId(id)) => {
            check_token(id, "subject.visitor_id", lift_domain::event::MAX_EVENT_ID_LEN, &mut v);
            v.is_empty().then(|| Subject::Visitor(id.clone()))
        }
    };
    match out {
        Some(s) if v.is_empty() => Ok(s),
        _ => Err(Error::Invalid(v)),
    }
}

/// Who asked: the authenticated key, or a fixed name when authentication is off.
fn actor<T>(req: &Request<T>) -> Actor {
    match req.extensions().get::<Principal>() {
        Some(p) => Actor { key_id: p.key_id.clone(), scope: Scope::PrivacyAdmin.name().to_owned() },
        None => Actor { key_id: "auth-off".into(), scope: "none".into() },
    }
}

fn link_to_proto(l: &lift_store::links::Link) -> ipb::Link {
    ipb::Link {
        link: l.link.clone(),
        owner: Some(l.owner.to_proto()),
        campaign_id: l.campaign_id.clone(),
        attribution_window_secs: l.attribution_window_secs,
        landing_url: l.landing_url.clone(),
    }
}

type ExportStream = Pin<Box<dyn Stream<Item = Result<pb::ExportResponse, Status>> + Send>>;

#[tonic::async_trait]
impl PrivacyService for Privacy {
    type ExportStream = ExportStream;

    /// Audited once the scan is complete, before the first message is sent.
    #[tracing::instrument(skip_all)]
    async fn export(&self, req: Request<pb::ExportRequest>) -> Result<Response<Self::ExportStream>, Status> {
        let who = actor(&req);
        let subject = subject(req.get_ref().subject.as_ref())?;
        let db = self.ingest.db();
        let found = scan::find(db, self.ingest.ledger(), &subject).await?;
        let hash = subject.hash();
        let events = found.events.len() as u64;
        store::audit(db, &who, "export", &hash, events, lift_domain::time::now()).await.map_err(Error::from)?;
        tracing::info!(key = %who.key_id, subject = %hash, events, links = found.links.len(), "privacy export");
        let summary = pb::ExportSummary {
            events,
            links: found.links.len() as u64,
            subject_hash: hash,
            through_offset: found.through,
            not_covered: NOT_COVERED.iter().map(|s| (*s).to_owned()).collect(),
            score_history_points: 0,
            matching_records: 0,
            score_explanations: 0,
            score_explanations_unavailable: 0,
        };
        let items = found
            .events
            .into_iter()
            .map(pb::export_response::Item::Event)
            .chain(found.links.iter().map(|l| pb::export_response::Item::Link(link_to_proto(l))).collect::<Vec<_>>())
            .chain(std::iter::once(pb::export_response::Item::Summary(summary)))
            .map(|item| Ok(pb::ExportResponse { item: Some(item) }));
        Ok(Response::new(Box::pin(futures::stream::iter(items))))
    }

    #[tracing::instrument(skip_all)]
    async fn erase(&self, req: Request<pb::EraseRequest>) -> Result<Response<pb::EraseResponse>, Status> {
        let who = actor(&req);
        let subject = subject(req.get_ref().subject.as_ref())?;
        let e = Privacy::erase(self, &subject, &who).await?;
        tracing::info!(
            key = %who.key_id,
            subject = %e.subject_hash,
            events = e.events_erased,
            links = e.links_deleted,
            marker = e.marker_offset,
            "privacy erasure"
        );
        Ok(Response::new(pb::EraseResponse {
            subject_hash: e.subject_hash,
            events_erased: e.events_erased,
            links_deleted: e.links_deleted,
            clicks_deleted: e.clicks_deleted,
            marker_offset: e.marker_offset,
        }))
    }

    #[tracing::instrument(skip_all)]
    async fn list_audit(&self, req: Request<pb::ListAuditRequest>) -> Result<Response<pb::ListAuditResponse>, Status> {
        let r = req.into_inner();
        let limit = match r.page_size {
            0 => DEFAULT_AUDIT_PAGE,
            n if n > MAX_AUDIT_PAGE => {
                return Err(Error::Invalid(vec![FieldViolation::new(
                    "page_size",
                    format!("is {n}; the limit is {MAX_AUDIT_PAGE}"),
                )])
                .into());
            }
            n => n,
        };
        let rows = store::list_audit(self.ingest.db(), r.after_id, limit).await.map_err(Error::from)?;
        let entries = rows
            .into_iter()
            .map(|a| pb::AuditEntry {
                id: a.id,
                at: Some(lift_proto::convert::to_timestamp(a.at)),
                key_id: a.key_id,
                scope: a.scope,
                action: match a.action.as_str() {
                    "export" => pb::AuditAction::Export,
                    "erase" => pb::AuditAction::Erase,
                    "retention" => pb::AuditAction::Retention,
                    _ => pb::AuditAction::Unspecified,
                } as i32,
                subject_hash: a.subject_hash,
                events: a.events,
            })
            .collect();
        Ok(Response::new(pb::ListAuditResponse { entries }))
    }
}
