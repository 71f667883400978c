//! Shared by the store's examples: the rows of a queued message of one recipient, sized like
//! a real one (sealed envelope, arrival and address; blind indexes).

use carepost_store::queue::{MessageRow, RecipientRow, state};

/// A queued message `id` received at `received_at` (microseconds), its body at `body_blob`
/// (a blob key, or `queue::INLINE_BODY`), and its one recipient, due at once.
pub fn message(id: &str, received_at: i64, body_blob: String) -> (MessageRow, Vec<RecipientRow>) {
    let m = MessageRow {
        id: id.into(),
        tenant: "default".into(),
        received_at,
        source: "smtp".into(),
        size: 10_240,
        body_blob,
        envelope: vec![7; 200],
        arrival: vec![7; 200],
        message_id_index: Some(vec![1; 32]),
        inspection: None,
        state: state::ACTIVE.into(),
        done_at: None,
    };
    let r = RecipientRow {
        message_id: id.into(),
        idx: 0,
        tenant: "default".into(),
        address: vec![7; 120],
        address_index: vec![2; 32],
        domain_index: vec![3; 32],
        decision: None,
        state: state::QUEUED.into(),
        attempts: 0,
        next_attempt_at: 1,
        lease_until: None,
        last_reply: None,
        method: None,
        delay_notified: false,
        updated_at: received_at,
    };
    (m, vec![r])
}
