//! A fresh Postgres database per test, on the machine's server (127.0.0.1:5432, user
//! postgres, trust), dropped at the end even when the test panics; `MARTELO_TEST_POSTGRES`
//! overrides the server URL.

#![allow(dead_code)]

use sqlx::postgres::PgPool;
use sqlx::{Connection, PgConnection};

pub fn server_url() -> String {
    std::env::var("MARTELO_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

#[derive(Debug)]
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create() -> TestDb {
        let name = format!("martelo_sink_test_{:016x}", rand::random::<u64>());
        let mut admin = PgConnection::connect(&format!("{}/postgres", server_url()))
            .await
            .expect("connect to the test Postgres at 127.0.0.1:5432");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        let url = format!("{}/{name}", server_url());
        TestDb { name, url }
    }

    pub fn pool(&self) -> PgPool {
        martelo_sink::connect(&self.url).expect("pool")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async; a thread with its own runtime does the DROP DATABASE.
        let done = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                if let Ok(mut admin) =
                    PgConnection::connect(&format!("{}/postgres", server_url())).await
                {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await;
                }
            });
        });
        let _ = done.join();
    }
}
