//! The offer lifecycle on the ingest wire: `OfferState` and the `OfferTransition` event body.

use lift_domain::AccountId;
use lift_domain::offer::{MAX_CAMPAIGN_ID_LEN, MAX_NOTE_LEN, OfferState, OfferTransition};
use lift_domain::validation::{FieldViolation, Violations, check_token};

use super::AccountIdProto;
use crate::ingest::v1 as pb;

/// Wire conversion of [`OfferState`] (the wire numbers equal [`OfferState::code`]).
pub trait OfferStateProto {
    fn to_proto(self) -> pb::OfferState;
}

impl OfferStateProto for OfferState {
    fn to_proto(self) -> pb::OfferState {
        match self {
            OfferState::Offered => pb::OfferState::Offered,
            OfferState::Accepted => pb::OfferState::Accepted,
            OfferState::Declined => pb::OfferState::Declined,
            OfferState::Expired => pb::OfferState::Expired,
            OfferState::Delivered => pb::OfferState::Delivered,
            OfferState::Redeemed => pb::OfferState::Redeemed,
        }
    }
}

/// Wire conversions of [`OfferTransition`].
pub trait OfferTransitionProto: Sized {
    /// Validates the wire body; paths are relative to the event (`offer.<field>`).
    fn from_proto(o: &pb::OfferTransition, v: &mut Violations) -> Option<Self>;
    fn to_proto(&self) -> pb::OfferTransition;
}

impl OfferTransitionProto for OfferTransition {
    fn from_proto(o: &pb::OfferTransition, v: &mut Violations) -> Option<Self> {
        let before = v.len();
        check_token(&o.campaign_id, "offer.campaign_id", MAX_CAMPAIGN_ID_LEN, v);
        let creator = AccountId::from_proto(o.creator.as_ref(), "offer.creator", v);
        let state = |c: i32, field: &str, v: &mut Violations| {
            let s = OfferState::from_code(c);
            if s.is_none() {
                v.push(FieldViolation::new(
                    field,
                    "must be one of offered, accepted, declined, expired, delivered, redeemed",
                ));
            }
            s
        };
        let from = state(o.from_state, "offer.from_state", v);
        let to = state(o.to_state, "offer.to_state", v);
        if let (Some(f), Some(t)) = (from, to)
            && t.predecessor() != Some(f)
        {
            let allowed: Vec<&str> = f.next().into_iter().map(OfferState::name).collect();
            v.push(FieldViolation::new(
                "offer.to_state",
                if allowed.is_empty() {
                    format!("an offer {f} is final; it cannot become {t}")
                } else {
                    format!("an offer {f} can become {}, not {t}", allowed.join(" or "))
                },
            ));
        }
        if o.note.len() > MAX_NOTE_LEN {
            v.push(FieldViolation::new(
                "offer.note",
                format!("is {} bytes long; the limit is {MAX_NOTE_LEN}", o.note.len()),
            ));
        } else if o.note.chars().any(char::is_control) {
            v.push(FieldViolation::new("offer.note", "must not contain control characters"));
        }
        match (v.len() == before, creator, from, to) {
            (true, Some(creator), Some(from), Some(to)) => Some(Self {
                campaign_id: o.campaign_id.clone(),
                creator,
                from,
                to,
                note: (!o.note.is_empty()).then(|| o.note.clone()),
            }),
            _ => None,
        }
    }

    fn to_proto(&self) -> pb::OfferTransition {
        pb::OfferTransition {
            campaign_id: self.campaign_id.clone(),
            creator: Some(self.creator.to_proto()),
            from_state: self.from.to_proto() as i32,
            to_state: self.to.to_proto() as i32,
            note: self.note.clone().unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pins that the wire and stored numbers of every state agree.
    #[test]
    fn wire_numbers_are_codes() {
        for s in OfferState::ALL {
            assert_eq!(s.to_proto() as i32, i32::from(s.code()), "wire and stored numbers agree");
        }
    }

    /// Pins validation of the wire body: a step the lifecycle does not allow is
    /// refused with its field, and a valid one round-trips.
    #[test]
    fn validates_wire_transitions() {
        let mut wire = pb::OfferTransition {
            campaign_id: "cmp_1".into(),
            creator: Some(pb::AccountRef { network: "x".into(), id: "anna".into() }),
            from_state: pb::OfferState::Accepted as i32,
            to_state: pb::OfferState::Redeemed as i32,
            note: String::new(),
        };
        let mut v = Vec::new();
        assert!(OfferTransition::from_proto(&wire, &mut v).is_none());
        assert_eq!(v[0].field, "offer.to_state");
        assert!(v[0].description.contains("can become delivered"), "{}", v[0].description);

        wire.to_state = pb::OfferState::Delivered as i32;
        wire.note = "parcel 123".into();
        let mut v = Vec::new();
        let t = OfferTransition::from_proto(&wire, &mut v).expect("valid");
        assert_eq!(t.to_proto(), wire);

        wire.from_state = 0;
        wire.creator = None;
        let mut v = Vec::new();
        assert!(OfferTransition::from_proto(&wire, &mut v).is_none());
        let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["offer.creator", "offer.from_state"]);
    }
}
