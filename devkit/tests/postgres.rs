//! [`PrivatePostgres`] against a real Postgres installation: start, create a database,
//! write, stop (refuses connections), start again (same port, data kept), kill (a crash:
//! committed data survives recovery), and drop (the server is gone).

use std::time::Duration;

use martelo_devkit::{PostgresError, PrivatePostgres};
use sqlx::Connection as _;

async fn count_rows(url: &str) -> Result<i64, sqlx::Error> {
    let mut connection = sqlx::PgConnection::connect(url).await?;
    let count = sqlx::query_scalar("SELECT count(*) FROM marks")
        .fetch_one(&mut connection)
        .await?;
    connection.close().await?;
    Ok(count)
}

async fn insert_row(url: &str) {
    let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
    sqlx::query("INSERT INTO marks DEFAULT VALUES")
        .execute(&mut connection)
        .await
        .expect("insert");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_postgres_stops_starts_again_on_its_port_and_survives_a_kill() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("postgres");
    let postgres = PrivatePostgres::start(&data_dir)
        .await
        .expect("start a private Postgres (needs initdb and pg_ctl)");
    assert!(postgres.is_running());
    assert!(postgres.url().starts_with("postgres://postgres@127.0.0.1:"));
    let port = postgres.port();

    let url = postgres
        .create_database("devkit_test")
        .await
        .expect("create");
    assert_eq!(url, format!("{}/devkit_test", postgres.url()));
    // Creating it again is a no-op, and a name that is not an identifier is refused.
    postgres
        .create_database("devkit_test")
        .await
        .expect("again");
    assert!(matches!(
        postgres.create_database("no; drop").await,
        Err(PostgresError::DatabaseName(_))
    ));
    let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect");
    sqlx::query("CREATE TABLE marks (id serial PRIMARY KEY)")
        .execute(&mut connection)
        .await
        .expect("create table");
    drop(connection);
    insert_row(&url).await;

    postgres.stop().await.expect("stop");
    assert!(!postgres.is_running());
    assert!(
        count_rows(&url).await.is_err(),
        "a stopped server must refuse connections"
    );
    assert!(matches!(
        postgres.stop().await,
        Err(PostgresError::NotRunning { .. })
    ));

    postgres.start_again().await.expect("start again");
    assert!(postgres.is_running());
    assert_eq!(postgres.port(), port, "the port is kept");
    assert_eq!(count_rows(&url).await.expect("count"), 1, "data kept");
    insert_row(&url).await;

    postgres.kill().await.expect("kill");
    assert!(!postgres.is_running());
    assert!(count_rows(&url).await.is_err(), "a killed server is gone");
    postgres
        .start_again()
        .await
        .expect("start again after a crash");
    assert_eq!(
        count_rows(&url).await.expect("count"),
        2,
        "committed rows survive a crash"
    );

    let pid_file = data_dir.join("postmaster.pid");
    assert!(pid_file.exists());
    drop(postgres);
    // The fast shutdown removes postmaster.pid once the server is down.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pid_file.exists() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(!pid_file.exists(), "dropping it stops the server");
    assert!(count_rows(&url).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_is_reused_by_a_second_private_postgres() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("postgres");
    let first = PrivatePostgres::start(&data_dir).await.expect("start");
    let url = first.create_database("kept").await.expect("create");
    drop(first);
    let second = PrivatePostgres::start(&data_dir)
        .await
        .expect("start again");
    // The database made by the first server is there (created again is a no-op).
    let mut connection = sqlx::PgConnection::connect(&second.database_url("kept"))
        .await
        .expect("connect to the kept database");
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut connection)
        .await
        .expect("query");
    assert_eq!(one, 1);
    assert!(url.ends_with("/kept"));
}
