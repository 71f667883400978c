//! The suppression list: per tenant, addresses carepost does not send to (hard bounces
//! now; complaints and unsubscribes later). Addresses are PHI: looked up by the same blind
//! index the queue uses, kept sealed (one data key per entry) for listing.

use carepost_audit::Event;
use carepost_model::{Address, Id, TenantId, Timestamp};
use carepost_store::suppression::{self, SuppressionRow};
use carepost_store::{StoreError, Tx, keys};
use carepost_vault::{KeyRing, VaultError, WrappedDataKey};

use crate::{Spool, SpoolError};

/// Why an address is suppressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuppressionReason {
    HardBounce,
    Complaint,
    Unsubscribe,
    Manual,
}

impl SuppressionReason {
    pub fn as_str(self) -> &'static str {
        match self {
            SuppressionReason::HardBounce => "hard-bounce",
            SuppressionReason::Complaint => "complaint",
            SuppressionReason::Unsubscribe => "unsubscribe",
            SuppressionReason::Manual => "manual",
        }
    }
}

/// A listed address, opened.
#[derive(Debug, Clone)]
pub struct SuppressionEntry {
    pub address: String,
    pub reason: String,
    pub detail: Option<String>,
    pub created_at: Timestamp,
}

fn object(id: &str) -> String {
    format!("supp/{id}")
}

/// The blind index an address is listed under (the queue's recipient index).
pub fn address_index(ring: &KeyRing, tenant: &TenantId, address: &Address) -> Result<Vec<u8>, VaultError> {
    ring.blind_index(tenant, "rcpt", address.canonical().as_bytes())
}

/// A sealed entry ready to insert with [`insert_in`].
pub struct PreparedSuppression {
    row: SuppressionRow,
    wrapped: WrappedDataKey,
    tenant: TenantId,
}

pub fn prepare(
    ring: &KeyRing,
    tenant: &TenantId,
    address: &Address,
    reason: SuppressionReason,
    detail: Option<&str>,
) -> Result<PreparedSuppression, VaultError> {
    let id = Id::new().to_string();
    let (key, wrapped) = ring.new_data_key(tenant, &object(&id))?;
    let row = SuppressionRow {
        tenant: tenant.to_string(),
        address_index: address_index(ring, tenant, address)?,
        address: key.seal_field("address", address.as_str().as_bytes())?,
        detail: detail.map(|d| key.seal_field("detail", d.as_bytes())).transpose()?,
        id,
        reason: reason.as_str().to_owned(),
        created_at: Timestamp::now().as_micros(),
    };
    Ok(PreparedSuppression { row, wrapped, tenant: tenant.clone() })
}

/// Inserts a prepared entry in the caller's transaction; false when already listed.
pub async fn insert_in(tx: &mut Tx, entry: &PreparedSuppression) -> Result<bool, StoreError> {
    if !suppression::insert(tx, &entry.row).await? {
        return Ok(false);
    }
    keys::put_data_key(tx, &entry.tenant, &object(&entry.row.id), &entry.wrapped).await?;
    Ok(true)
}

/// Adds an address by hand (`carepost suppress add`). Returns false when already listed.
pub async fn add(
    spool: &Spool,
    actor: &str,
    tenant: &TenantId,
    address: &Address,
    reason: SuppressionReason,
    note: Option<&str>,
) -> Result<bool, SpoolError> {
    let entry = prepare(spool.ring(), tenant, address, reason, note)?;
    let event = Event::new(actor, "suppression.add")
        .target(format!("tenant:{tenant}"))
        .detail_hashed("address", address.canonical().as_bytes())
        .detail("reason", reason.as_str());
    let audit = spool.audit().clone();
    Ok(spool
        .store()
        .write(move |tx| {
            Box::pin(async move {
                let added = insert_in(tx, &entry).await?;
                if added {
                    audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                }
                Ok(added)
            })
        })
        .await?)
}

/// Removes an address and shreds its sealed copy. Returns false when it was not listed.
pub async fn remove(spool: &Spool, actor: &str, tenant: &TenantId, address: &Address) -> Result<bool, SpoolError> {
    let index = address_index(spool.ring(), tenant, address)?;
    let event = Event::new(actor, "suppression.remove")
        .target(format!("tenant:{tenant}"))
        .detail_hashed("address", address.canonical().as_bytes());
    let (audit, tenant) = (spool.audit().clone(), tenant.clone());
    Ok(spool
        .store()
        .write(move |tx| {
            Box::pin(async move {
                let Some(id) = suppression::delete(tx, tenant.as_str(), &index).await? else {
                    return Ok(false);
                };
                keys::shred_data_key(tx, &tenant, &object(&id)).await?;
                audit.append_in(tx, &event).await.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(true)
            })
        })
        .await?)
}

/// A tenant's list, opened.
pub async fn list(spool: &Spool, tenant: &TenantId) -> Result<Vec<SuppressionEntry>, SpoolError> {
    let mut out = Vec::new();
    for row in spool.store().suppressions(tenant.as_str()).await? {
        let key = spool.store().data_key(spool.ring(), tenant, &object(&row.id)).await?;
        let address = String::from_utf8_lossy(&key.open_field("address", &row.address)?).into_owned();
        let detail = row
            .detail
            .as_ref()
            .map(|d| key.open_field("detail", d))
            .transpose()?
            .map(|d| String::from_utf8_lossy(&d).into_owned());
        out.push(SuppressionEntry {
            address,
            reason: row.reason,
            detail,
            created_at: Timestamp::from_micros(row.created_at),
        });
    }
    Ok(out)
}

/// Whether a remote refusal means the address does not exist (and so belongs on the list):
/// RFC 3463 X.1.1 bad mailbox, X.1.2 bad system, X.1.6 moved, X.1.10 null MX.
pub fn is_hard_bounce(status: &str) -> bool {
    matches!(status, "5.1.1" | "5.1.2" | "5.1.6" | "5.1.10")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_are_sealed_listed_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let spool = carepost_spool::testing::spool(dir.path()).await;
        let tenant = TenantId::default();
        let a = Address::parse("Patient.One@Example.net").unwrap();
        assert!(add(&spool, "cli", &tenant, &a, SuppressionReason::Manual, Some("asked to stop")).await.unwrap());
        let same = Address::parse("patient.one@example.NET").unwrap();
        assert!(
            !add(&spool, "cli", &tenant, &same, SuppressionReason::Manual, None).await.unwrap(),
            "case-insensitive"
        );
        let listed = list(&spool, &tenant).await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].address, "Patient.One@example.net");
        assert_eq!(listed[0].detail.as_deref(), Some("asked to stop"));
        let index = address_index(spool.ring(), &tenant, &same).unwrap();
        assert_eq!(spool.store().suppressed_among("default", std::slice::from_ref(&index)).await.unwrap().len(), 1);
        assert!(remove(&spool, "cli", &tenant, &same).await.unwrap());
        assert!(!remove(&spool, "cli", &tenant, &same).await.unwrap());
        assert!(list(&spool, &tenant).await.unwrap().is_empty());
        spool.store().close().await;
        let found = carepost_testkit::files_containing(dir.path(), b"Patient.One");
        assert!(found.is_empty(), "address readable in {found:?}");
        assert!(is_hard_bounce("5.1.1") && !is_hard_bounce("5.2.2") && !is_hard_bounce("4.1.1"));
    }
}
