//! MTA-STS policies learned from recipient domains, kept until their max_age runs out so a
//! restart does not forget them (RFC 8461 section 5.1). Rows are keyed by a blind index of
//! the domain and hold the policy sealed; blind indexing and sealing are the caller's
//! (delivery), this module stores what it is given.

use carepost_model::TenantId;
use carepost_vault::WrappedDataKey;
use sqlx::Row;

use crate::{Store, StoreError, keys};

/// A stored policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StsPolicyRow {
    pub domain_index: Vec<u8>,
    /// Sealed under the data key of `object`.
    pub policy: Vec<u8>,
    pub fetched_at: i64,
    pub expires_at: i64,
}

impl Store {
    /// The stored policy of a domain, when it has not expired at `now`.
    pub async fn mta_sts_policy(&self, domain_index: &[u8], now: i64) -> Result<Option<StsPolicyRow>, StoreError> {
        let row = sqlx::query("SELECT * FROM mta_sts_policies WHERE domain_index = $1 AND expires_at > $2")
            .bind(domain_index)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        row.map(|r| {
            Ok(StsPolicyRow {
                domain_index: r.try_get("domain_index")?,
                policy: r.try_get("policy")?,
                fetched_at: r.try_get("fetched_at")?,
                expires_at: r.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Stores (or replaces) a domain's policy with the data key it is sealed under, in one
    /// transaction: the key of the policy it replaces is destroyed with it.
    pub async fn put_mta_sts_policy(
        &self,
        row: StsPolicyRow,
        tenant: TenantId,
        object: String,
        wrapped: WrappedDataKey,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
                Box::pin(async move {
                    keys::shred_data_key(tx, &tenant, &object).await?;
                    keys::put_data_key(tx, &tenant, &object, &wrapped).await?;
                    sqlx::query(
                        "INSERT INTO mta_sts_policies (domain_index, policy, fetched_at, expires_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (domain_index) DO UPDATE SET policy = excluded.policy, fetched_at = excluded.fetched_at, \
                         expires_at = excluded.expires_at",
                    )
                    .bind(&row.domain_index)
                    .bind(&row.policy)
                    .bind(row.fetched_at)
                    .bind(row.expires_at)
                    .execute(tx.conn().await?)
                    .await?;
                    Ok(())
                })
            })
            .await
    }
}
