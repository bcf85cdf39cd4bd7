use super::*;

/// Pins the subject hash: stable (erasure markers and audit rows written today must
/// match tomorrow's), and unambiguous between accounts and visitors and across the
/// network/id split.
#[test]
fn subject_hashes_are_stable_and_separated() {
    let a = Subject::Account(AccountId::new("x", "anna"));
    assert_eq!(a.hash(), account_hash(&AccountId::new("x", "anna")));
    assert_eq!(a.hash().len(), 64);
    assert_ne!(a.hash(), Subject::Visitor("x:anna".into()).hash());
    assert_ne!(account_hash(&AccountId::new("xa", "nna")), a.hash());
    assert_ne!(tombstone_id("s", "ab"), tombstone_id("sa", "b"));
    assert!(tombstone_id("s", "e").starts_with("erased-"));
    assert!(tombstone_id("s", "e").len() <= lift_domain::event::MAX_EVENT_ID_LEN);
}
