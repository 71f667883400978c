//! Choosing the backend, on SQLite and on PostgreSQL: the URL decides, the store says which
//! it runs on, a second connection sees the same data, and no URL prints its password.

mod support;

use carepost_model::TenantId;
use carepost_store::{Backend, StoreOptions, keys};
use carepost_vault::{KeyRing, MasterKey};
use support::Db;

#[test]
fn the_url_names_the_backend_and_hides_its_password() {
    let pg = StoreOptions {
        url: "postgres://carepost:s3cret@db.internal:5432/carepost?sslmode=verify-full".into(),
        pool_size: 8,
    };
    assert_eq!(pg.backend(), Backend::Postgres);
    assert!(pg.backend().is_shared());
    assert_eq!(pg.display(), "postgres://carepost:***@db.internal:5432/carepost?sslmode=verify-full");
    let pg = StoreOptions { url: "postgresql://db.internal/carepost".into(), pool_size: 8 };
    assert_eq!((pg.backend(), pg.display().as_str()), (Backend::Postgres, "postgresql://db.internal/carepost"));
    let lite = StoreOptions::sqlite(std::path::Path::new("/var/lib/carepost/carepost.db"));
    assert_eq!(lite.backend(), Backend::Sqlite);
    assert!(!lite.backend().is_shared());
    assert_eq!(StoreOptions { url: "sqlite://data/x.db".into(), pool_size: 1 }.backend(), Backend::Sqlite);
}

/// Data keys and tenants written through one connection are seen through another (a node
/// that starts later), and a shredded key is gone for both.
async fn a_second_connection_sees_the_same_store(db: Db) {
    let store = db.store.clone();
    assert_eq!(store.backend(), db.backend);
    let ring = KeyRing::new(MasterKey::generate().unwrap());
    let tenant = TenantId::new("clinic-two").unwrap();
    store.load_system_keys(&ring).await.unwrap();
    store.load_tenant_keys(&ring, &tenant).await.unwrap();
    let (_, wrapped) = ring.new_data_key(&tenant, "obj/1").unwrap();
    let t = tenant.clone();
    store.write(move |tx| Box::pin(async move { keys::put_data_key(tx, &t, "obj/1", &wrapped).await })).await.unwrap();

    let other = db.reopen().await;
    assert!(other.tenants_with_keys().await.unwrap().contains(&tenant));
    assert!(other.data_key(&ring, &tenant, "obj/1").await.is_ok());
    let t = tenant.clone();
    assert!(other.write(move |tx| Box::pin(async move { keys::shred_data_key(tx, &t, "obj/1").await })).await.unwrap());
    assert!(store.data_key(&ring, &tenant, "obj/1").await.is_err());
    other.close().await;
}

backends!(a_second_connection_sees_the_same_store);

/// TLS to the database comes from the URL: a role the server admits over TLS only connects
/// with `sslmode=require` and is refused without it.
#[tokio::test]
async fn postgres_over_tls_through_the_url() {
    let url = carepost_testkit::postgres::cluster().create_tls_only_database();
    let plain = StoreOptions { url: format!("{url}?sslmode=disable"), pool_size: 2 };
    let refused = carepost_store::Store::connect(&plain).await;
    let refused = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(refused.contains("no encryption"), "the role is refused without TLS: {refused}");
    let tls = StoreOptions { url: format!("{url}?sslmode=require"), pool_size: 2 };
    let store = carepost_store::Store::connect(&tls).await.unwrap();
    assert_eq!(store.backend(), Backend::Postgres);
    assert!(store.try_acquire_lease("tls", "me", 0, 10).await.unwrap(), "reads and writes over TLS");
    assert_eq!(store.lease("tls").await.unwrap().unwrap().holder, "me");
    store.close().await;
}
