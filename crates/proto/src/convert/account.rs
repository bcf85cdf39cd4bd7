//! `AccountRef` ↔ [`AccountId`].

use lift_domain::AccountId;
use lift_domain::account::{MAX_ACCOUNT_ID_LEN, MAX_NETWORK_LEN};
use lift_domain::validation::{FieldViolation, Violations, check_token};

use crate::ingest::v1 as pb;

/// Wire conversions of [`AccountId`].
pub trait AccountIdProto: Sized {
    /// Validates a wire reference, recording violations under `field`.
    fn from_proto(r: Option<&pb::AccountRef>, field: &str, v: &mut Violations) -> Option<Self>;
    fn to_proto(&self) -> pb::AccountRef;
}

impl AccountIdProto for AccountId {
    fn from_proto(r: Option<&pb::AccountRef>, field: &str, v: &mut Violations) -> Option<Self> {
        let Some(r) = r else {
            v.push(FieldViolation::new(field, "is required"));
            return None;
        };
        let before = v.len();
        check_token(&r.network, &format!("{field}.network"), MAX_NETWORK_LEN, v);
        check_token(&r.id, &format!("{field}.id"), MAX_ACCOUNT_ID_LEN, v);
        (v.len() == before).then(|| Self::new(r.network.clone(), r.id.clone()))
    }

    fn to_proto(&self) -> pb::AccountRef {
        pb::AccountRef { network: self.network.clone(), id: self.id.clone() }
    }
}
