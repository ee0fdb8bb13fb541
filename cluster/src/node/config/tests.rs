//! Unit tests of the node's settings: the order of the layers, the checks and their messages,
//! the printed form, and the names of flags and variables.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::settings::{KEYS, flag, variable};
use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    node: NodeArgs,
}

fn parse(args: &[&str]) -> Result<NodeArgs, clap::Error> {
    Cli::try_parse_from(std::iter::once("martelo-node").chain(args.iter().copied()))
        .map(|cli| cli.node)
}

/// The three required settings, as flags.
fn args() -> NodeArgs {
    NodeArgs {
        id: Some(1),
        listen: Some("127.0.0.1:7001".into()),
        data_dir: Some("/tmp/x".into()),
        ..NodeArgs::default()
    }
}

fn environment(variables: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    variables
        .iter()
        .map(|(name, value)| (OsString::from(name), OsString::from(value)))
        .collect()
}

fn resolve(args: &NodeArgs, variables: &[(&str, &str)]) -> Result<NodeConfig, ConfigError> {
    args.resolve_in(environment(variables))
}

fn refusal(args: &NodeArgs, variables: &[(&str, &str)]) -> String {
    match resolve(args, variables) {
        Ok(config) => panic!("accepted: {config:?}"),
        Err(error) => error.to_string(),
    }
}

fn write_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("node.toml");
    std::fs::write(&path, text).expect("write the config file");
    path
}

fn with_file(path: &Path) -> NodeArgs {
    NodeArgs {
        config: Some(path.to_owned()),
        ..NodeArgs::default()
    }
}

#[test]
fn defaults_fill_what_the_layers_leave_out() {
    let config = resolve(&args(), &[]).expect("valid");
    assert_eq!(
        config.advertise, "127.0.0.1:7001",
        "advertise defaults to listen"
    );
    assert_eq!(config.shard_count.get(), 8);
    assert_eq!(config.max_clock_skew, Duration::from_millis(500));
    assert_eq!(config.log_format, LogFormat::Json);
    assert!(config.leader_balance, "leader balancing is on by default");
    assert_eq!(config.raft, RaftSettings::default());
    assert_eq!(config.raft.heartbeat_ms, 100);
    assert_eq!(config.raft.election_timeout_min_ms, 600);
    assert_eq!(config.raft.election_timeout_max_ms, 800);
    assert_eq!(
        config.store.store_config().checkpoint_interval_entries,
        martelo_raft_store::StoreConfig::default().checkpoint_interval_entries
    );
    assert_eq!(config.test, TestConfig::default());
}

#[test]
fn each_layer_wins_over_the_one_below() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "id = 7\nlisten = \"127.0.0.1:9\"\ndata_dir = \"/d\"\nshard_count = 4\n\
         [raft]\nheartbeat_ms = 50\nelection_timeout_min_ms = 400\n",
    );
    let file = with_file(&path);
    let from_file = resolve(&file, &[]).expect("valid file");
    assert_eq!(from_file.id, 7);
    assert_eq!(from_file.shard_count.get(), 4);
    assert_eq!(
        from_file.raft.heartbeat_ms, 50,
        "the file beats the default"
    );
    assert_eq!(
        from_file.raft.election_timeout_max_ms, 800,
        "the default fills in"
    );

    let variables = [
        ("MARTELO_RAFT__HEARTBEAT_MS", "60"),
        ("MARTELO_SHARD_COUNT", "5"),
        ("MARTELO_NODE_ID", "8"),
    ];
    let from_environment = resolve(&file, &variables).expect("valid");
    assert_eq!(
        from_environment.raft.heartbeat_ms, 60,
        "the environment beats the file"
    );
    assert_eq!(
        from_environment.raft.election_timeout_min_ms, 400,
        "the file still counts"
    );
    assert_eq!(from_environment.shard_count.get(), 5);
    assert_eq!(from_environment.id, 8);

    let mut flags = with_file(&path);
    flags.raft.heartbeat_ms = Some(70);
    flags.id = Some(9);
    let from_flags = resolve(&flags, &variables).expect("valid");
    assert_eq!(
        from_flags.raft.heartbeat_ms, 70,
        "a flag beats the environment"
    );
    assert_eq!(from_flags.id, 9);
    assert_eq!(
        from_flags.shard_count.get(),
        5,
        "the environment still counts"
    );
}

#[test]
fn a_list_from_a_higher_layer_replaces_the_lower_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(
        dir.path(),
        "id = 1\nlisten = \"127.0.0.1:9\"\ndata_dir = \"/d\"\n\
         peers = [\"1=127.0.0.1:9\", \"2=127.0.0.1:10\"]\n",
    );
    let from_file = resolve(&with_file(&path), &[]).expect("valid");
    assert_eq!(from_file.peers.len(), 2);
    let from_environment = resolve(
        &with_file(&path),
        &[("MARTELO_PEERS", "1=127.0.0.1:9,3=127.0.0.1:11,4=h:12")],
    )
    .expect("valid");
    assert_eq!(
        from_environment.peers.keys().copied().collect::<Vec<_>>(),
        vec![1, 3, 4]
    );
    let mut flags = with_file(&path);
    flags.peers = vec!["5=127.0.0.1:13".into()];
    let from_flags = resolve(&flags, &[("MARTELO_PEERS", "1=127.0.0.1:9")]).expect("valid");
    assert_eq!(
        from_flags.peers.keys().copied().collect::<Vec<_>>(),
        vec![5]
    );
}

#[test]
fn the_environment_names_nested_keys_with_double_underscores_and_keeps_old_names() {
    let config = resolve(
        &args(),
        &[
            ("MARTELO_STORE__APPLY_BATCH_ENTRIES_MAX", "64"),
            ("MARTELO_LEADER_BALANCE", "false"),
            ("MARTELO_LOG_FORMAT", "text"),
            ("MARTELO_SOURCE_ADDRESS", "127.0.0.17"),
            ("MARTELO_CLOCK_OFFSET_MS", "-250"),
            ("MARTELO_TEST__DIAL_OVERRIDE", "2=127.0.0.1:9"),
            // Not the node's: left alone.
            ("MARTELO_ADDR", "elsewhere:1"),
            ("MARTELO_BIN", "/bin/martelo"),
            ("MARTELO_PHOENIX", "/opt/phoenix/bin/phoenix"),
            // Empty counts as unset.
            ("MARTELO_ADVERTISE", ""),
            ("PATH", "/bin"),
        ],
    )
    .expect("valid");
    assert_eq!(config.store.apply_batch_entries_max, 64);
    assert!(!config.leader_balance);
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(
        config.source_address,
        Some(std::net::IpAddr::from([127, 0, 0, 17]))
    );
    assert_eq!(config.test.clock_offset_ms, -250);
    assert_eq!(
        config.test.dial_overrides.get(&2).map(String::as_str),
        Some("127.0.0.1:9")
    );
    assert_eq!(config.advertise, config.listen);
}

#[test]
fn an_unknown_or_doubled_variable_is_refused_by_name() {
    let unknown = refusal(&args(), &[("MARTELO_RAFT__HEARTBEAT", "50")]);
    assert!(unknown.contains("MARTELO_RAFT__HEARTBEAT "), "{unknown}");
    let old_id = refusal(&args(), &[("MARTELO_ID", "3")]);
    assert!(old_id.contains("MARTELO_ID"), "{old_id}");
    let twice = refusal(
        &args(),
        &[
            ("MARTELO_CLOCK_OFFSET_MS", "1"),
            ("MARTELO_TEST__CLOCK_OFFSET_MS", "2"),
        ],
    );
    assert!(
        twice.contains("MARTELO_CLOCK_OFFSET_MS")
            && twice.contains("MARTELO_TEST__CLOCK_OFFSET_MS"),
        "{twice}"
    );
}

#[test]
fn bad_values_are_refused_with_their_source_named() {
    let mut bad = args();
    bad.id = Some(0);
    let message = refusal(&bad, &[]);
    assert!(
        message.contains("node id 0") && message.contains("flag --id"),
        "{message}"
    );

    let mut bad = args();
    bad.listen = Some("nowhere".into());
    assert!(refusal(&bad, &[]).contains("flag --listen"));

    let mut bad = args();
    bad.peers = vec!["1=a:1".into(), "1=b:2".into()];
    assert!(refusal(&bad, &[]).contains("twice"));

    let mut bad = args();
    bad.shard_count = Some(0);
    assert!(refusal(&bad, &[]).contains("flag --shard-count"));

    let from_environment = refusal(&args(), &[("MARTELO_METRICS_LISTEN", "nowhere")]);
    assert!(
        from_environment.contains("environment variable MARTELO_METRICS_LISTEN"),
        "{from_environment}"
    );

    let mut missing = args();
    missing.data_dir = None;
    let message = refusal(&missing, &[]);
    assert!(
        message.contains("--data-dir") && message.contains("MARTELO_DATA_DIR"),
        "{message}"
    );
}

#[test]
fn raft_timings_must_keep_their_order() {
    let message = refusal(&args(), &[("MARTELO_RAFT__HEARTBEAT_MS", "250")]);
    assert!(
        message.contains("raft.election_timeout_min_ms = 600 (default)")
            && message.contains(
                "raft.heartbeat_ms = 250 (environment variable MARTELO_RAFT__HEARTBEAT_MS)"
            ),
        "{message}"
    );
    let mut reversed = args();
    reversed.raft.election_timeout_max_ms = Some(600);
    let message = refusal(&reversed, &[]);
    assert!(
        message.contains(
            "must be below raft.election_timeout_max_ms = 600 (flag --raft-election-timeout-max-ms)"
        ),
        "{message}"
    );
    let mut zero = args();
    zero.raft.heartbeat_ms = Some(0);
    assert!(refusal(&zero, &[]).contains("raft.heartbeat_ms = 0"));
    let mut slow = args();
    slow.raft.heartbeat_ms = Some(400);
    slow.raft.election_timeout_min_ms = Some(4_000);
    slow.raft.election_timeout_max_ms = Some(5_000);
    assert!(
        refusal(&slow, &[])
            .contains("raft.heartbeat_ms = 400 (flag --raft-heartbeat-ms): outside 1..=250")
    );
    let mut too_many = args();
    too_many.raft.entries_per_append_max = Some(10_000);
    assert!(refusal(&too_many, &[]).contains("raft.entries_per_append_max"));
    let mut tuned = args();
    tuned.raft.heartbeat_ms = Some(200);
    tuned.raft.election_timeout_min_ms = Some(1_000);
    tuned.raft.election_timeout_max_ms = Some(1_500);
    let config = resolve(&tuned, &[]).expect("valid");
    assert_eq!(config.raft.election_timeout_max_ms, 1_500);
}

#[test]
fn store_settings_are_checked_by_the_store_and_named() {
    let mut bad = args();
    bad.store.snapshot_chunk_bytes = Some(1);
    bad.store.checkpoint_interval_entries = Some(0);
    let message = refusal(&bad, &[]);
    assert!(
        message.starts_with("2 invalid node settings:")
            && message
                .contains("store.snapshot_chunk_bytes = 1 (flag --store-snapshot-chunk-bytes)")
            && message.contains("store.checkpoint_interval_entries = 0"),
        "{message}"
    );
}

#[test]
fn file_problems_name_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_file(dir.path(), "identity = 1\n");
    let message = refusal(&with_file(&path), &[]);
    let named = format!(
        "identity = 1 (config file {}): unknown field",
        path.display()
    );
    assert!(message.contains(&named), "{message}");
    let path = write_file(dir.path(), "[raft]\nheartbeat = 5\n");
    let message = refusal(&with_file(&path), &[]);
    assert!(
        message.contains("raft.heartbeat = 5 (config file"),
        "{message}"
    );

    let path = write_file(dir.path(), "shard_count = \"many\"\n");
    let mut flags = with_file(&path);
    flags.id = Some(1);
    let message = refusal(&flags, &[]);
    assert!(
        message.contains("shard_count = \"many\" (config file"),
        "{message}"
    );

    let path = write_file(dir.path(), "id = \n");
    assert!(refusal(&with_file(&path), &[]).contains("not valid TOML"));

    let large = "# padding\n".repeat(CONFIG_FILE_BYTES_MAX as usize / 10 + 1);
    let path = write_file(dir.path(), &large);
    assert!(refusal(&with_file(&path), &[]).contains("the limit is"));
}

#[test]
fn a_wrongly_typed_variable_is_named() {
    let message = refusal(&args(), &[("MARTELO_SHARD_COUNT", "many")]);
    assert!(
        message.contains("shard_count = \"many\" (environment variable MARTELO_SHARD_COUNT)"),
        "{message}"
    );
}

#[test]
fn printed_settings_parse_back_to_the_same_settings() {
    let mut full = args();
    full.peers = vec!["1=127.0.0.1:7001,2=127.0.0.1:7002".into()];
    full.metrics_listen = Some("127.0.0.1:9101".into());
    full.source_address = Some(std::net::IpAddr::from([127, 0, 0, 11]));
    full.leader_balance = Some(false);
    full.raft.heartbeat_ms = Some(50);
    full.store.apply_batch_entries_max = Some(32);
    full.test.clock_offset_ms = Some(-5);
    full.test.dial_override = vec!["2=127.0.0.1:8002".into()];
    for args in [args(), full] {
        let config = resolve(&args, &[]).expect("valid");
        let printed = config.to_toml().expect("prints");
        let settings: Settings = toml::from_str(&printed).expect("printed TOML parses");
        assert_eq!(settings, config.settings(), "{printed}");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write_file(dir.path(), &printed);
        let again = resolve(&with_file(&path), &[]).expect("printed settings are valid");
        assert_eq!(again, config, "{printed}");
    }
}

#[test]
fn the_printed_settings_show_every_section_but_an_unused_test_one() {
    let printed = resolve(&args(), &[])
        .expect("valid")
        .to_toml()
        .expect("prints");
    for line in [
        "id = 1",
        "advertise = \"127.0.0.1:7001\"",
        "[raft]",
        "heartbeat_ms = 100",
        "[store]",
    ] {
        assert!(printed.contains(line), "{line} missing from\n{printed}");
    }
    assert!(!printed.contains("[test]"), "{printed}");
}

/// Leaf keys of a value, as dotted paths.
fn leaf_keys(value: &figment::value::Value, prefix: &str, keys: &mut BTreeSet<String>) {
    match value.as_dict() {
        Some(dict) => {
            for (key, inner) in dict {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_keys(inner, &path, keys);
            }
        }
        None => {
            keys.insert(prefix.to_owned());
        }
    }
}

#[test]
fn every_setting_is_listed_with_a_flag_and_a_variable() {
    let full = Settings {
        id: Some(1),
        listen: Some("a:1".into()),
        advertise: Some("a:1".into()),
        data_dir: Some("/d".into()),
        metrics_listen: Some("a:2".into()),
        source_address: Some(std::net::IpAddr::from([127, 0, 0, 1])),
        postgres: Some("postgres://h/d".into()),
        otlp_endpoint: Some("http://a:4317".into()),
        test: TestSettings {
            clock_offset_file: Some("/f".into()),
            plant_bug: Some("stale-read".into()),
            dial_override: vec!["2=a:1".into()],
            ..TestSettings::default()
        },
        ..Settings::default()
    };
    let mut keys = BTreeSet::new();
    leaf_keys(
        &figment::value::Value::serialize(&full).expect("serializes"),
        "",
        &mut keys,
    );
    let listed: BTreeSet<String> = KEYS.iter().map(|key| (*key).to_owned()).collect();
    assert_eq!(keys, listed, "KEYS and Settings differ");

    let command = Cli::command();
    let flags: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|argument| argument.get_long())
        .map(|long| format!("--{long}"))
        .collect();
    for key in KEYS {
        if *key == "test.plant_bug" && !cfg!(feature = "planted-bugs") {
            continue;
        }
        assert!(
            flags.contains(&flag(key)),
            "no flag {} for {key}",
            flag(key)
        );
        assert!(variable(key).starts_with("MARTELO_"));
    }
    assert_eq!(variable("id"), "MARTELO_NODE_ID");
    assert_eq!(variable("raft.heartbeat_ms"), "MARTELO_RAFT__HEARTBEAT_MS");
}

#[test]
fn test_flags_keep_their_old_names() {
    let old = parse(&[
        "--dial-override",
        "2=127.0.0.1:9",
        "--dial-override",
        "3=127.0.0.1:10",
        "--clock-offset-ms",
        "-250",
        "--clock-offset-file",
        "/tmp/offset",
    ])
    .expect("parses");
    assert_eq!(old.test.dial_override.len(), 2);
    assert_eq!(old.test.clock_offset_ms, Some(-250));
    let new = parse(&[
        "--test-dial-override",
        "2=127.0.0.1:9,3=127.0.0.1:10",
        "--test-clock-offset-ms",
        "-250",
        "--test-clock-offset-file",
        "/tmp/offset",
    ])
    .expect("parses");
    assert_eq!(new.test.clock_offset_file, old.test.clock_offset_file);
    let help = Cli::command().render_long_help().to_string();
    assert!(!help.contains("dial-override"), "test flags are hidden");
}

#[cfg(not(feature = "planted-bugs"))]
#[test]
fn a_planted_bug_needs_a_planted_build() {
    let message = refusal(&args(), &[("MARTELO_PLANT_BUG", "stale-read")]);
    assert!(message.contains("test.plant_bug"), "{message}");
}

#[cfg(feature = "planted-bugs")]
#[test]
fn a_planted_bug_is_named_by_its_flag() {
    let planted = parse(&["--plant-bug", "stale-read"]).expect("parses");
    let mut flags = args();
    flags.test = planted.test;
    let config = resolve(&flags, &[]).expect("valid");
    assert_eq!(
        config
            .test
            .plant_bug
            .map(martelo_engine::planted::Bug::name),
        Some("stale-read")
    );
    let message = refusal(&args(), &[("MARTELO_TEST__PLANT_BUG", "everything")]);
    assert!(message.contains("expected one of"), "{message}");
}

#[test]
fn leader_balance_takes_an_optional_boolean_after_an_equals_sign() {
    let balance = |args: &[&str]| parse(args).map(|node| node.leader_balance);
    assert_eq!(balance(&[]).expect("parses"), None);
    assert_eq!(
        balance(&["--leader-balance=false"]).expect("parses"),
        Some(false)
    );
    assert_eq!(balance(&["--leader-balance"]).expect("parses"), Some(true));
    assert!(balance(&["--leader-balance=maybe"]).is_err());
}

#[test]
fn the_admin_api_address_check_uses_the_shared_parser() {
    assert!(check_address("node address", "127.0.0.1:7001").is_ok());
    let error = check_address("node address", "nowhere").expect_err("refused");
    assert!(error.to_string().starts_with("node address:"), "{error}");
}

#[test]
fn postgres_is_checked_and_never_shown_with_its_password() {
    let on = NodeArgs {
        postgres: Some("postgres://sink:s3cret@127.0.0.1:5432/martelo".into()),
        ..args()
    };
    let config = resolve(&on, &[])
        .expect("valid")
        .postgres
        .expect("the sink is on");
    assert!(config.expose().contains("s3cret"));
    assert!(!format!("{config:?} {config}").contains("s3cret"));
    let from_environment = resolve(&args(), &[("MARTELO_POSTGRES", "postgres://h/d")])
        .expect("valid")
        .postgres
        .expect("set by MARTELO_POSTGRES");
    assert_eq!(from_environment.expose(), "postgres://h/d");
    let wrong = NodeArgs {
        postgres: Some("mysql://root:s3cret@db/x".into()),
        ..args()
    };
    let shown = refusal(&wrong, &[]);
    assert!(shown.contains("postgres"), "{shown}");
    assert!(!shown.contains("s3cret"), "{shown}");
    assert!(resolve(&args(), &[]).expect("valid").postgres.is_none());
}

#[test]
fn the_printed_settings_hide_the_postgres_password() {
    let mut with_password = args();
    with_password.postgres = Some("postgres://martelo:s3cret-pw@127.0.0.1:5432/martelo".into());
    let printed = resolve(&with_password, &[])
        .expect("valid")
        .to_toml()
        .expect("prints");
    assert!(!printed.contains("s3cret-pw"), "{printed}");
    assert!(
        printed.contains("postgres = \"postgres://martelo:***@127.0.0.1:5432/martelo\""),
        "{printed}"
    );
    assert!(printed.contains("shown as ***"), "{printed}");
    // Without a password there is nothing to hide, and the file parses back as it was.
    let mut without = args();
    without.postgres = Some("postgres://postgres@127.0.0.1:5432/martelo".into());
    let config = resolve(&without, &[]).expect("valid");
    let printed = config.to_toml().expect("prints");
    assert!(!printed.contains("***"), "{printed}");
    let settings: Settings = toml::from_str(&printed).expect("printed TOML parses");
    assert_eq!(settings, config.settings());
}

#[test]
fn spans_are_exported_only_with_an_endpoint_and_every_otlp_setting_is_checked() {
    let config = resolve(&args(), &[]).expect("valid");
    assert_eq!(config.otlp, None, "off by default");

    let config = resolve(
        &args(),
        &[("MARTELO_OTLP_ENDPOINT", "http://127.0.0.1:4317")],
    )
    .expect("valid");
    let otlp = config.otlp.expect("on");
    assert_eq!(otlp.endpoint, "http://127.0.0.1:4317");
    assert_eq!(otlp.service_name, "martelo-node");
    assert!((otlp.sample_ratio - 1.0).abs() < f64::EPSILON);
    assert_eq!(
        otlp.attributes,
        vec![("service.instance.id".to_owned(), "node-1".to_owned())]
    );

    let flagged = parse(&[
        "--id",
        "1",
        "--listen",
        "127.0.0.1:7001",
        "--data-dir",
        "/tmp/x",
        "--otlp-endpoint",
        "https://collector:4317/",
        "--otlp-service-name",
        "bids",
        "--otlp-sample-ratio",
        "0.25",
    ])
    .expect("parses");
    let otlp = resolve(&flagged, &[]).expect("valid").otlp.expect("on");
    assert_eq!(
        (otlp.service_name.as_str(), otlp.sample_ratio),
        ("bids", 0.25)
    );

    let long_name = "n".repeat(256);
    let refused = refusal(
        &args(),
        &[
            ("MARTELO_OTLP_ENDPOINT", "127.0.0.1:4317"),
            ("MARTELO_OTLP_SAMPLE_RATIO", "1.5"),
            ("MARTELO_OTLP_SERVICE_NAME", long_name.as_str()),
        ],
    );
    for expected in [
        "otlp_endpoint = \"127.0.0.1:4317\" (environment variable MARTELO_OTLP_ENDPOINT): not http://host:port",
        "otlp_sample_ratio = 1.5 (environment variable MARTELO_OTLP_SAMPLE_RATIO): outside 0..=1",
        "otlp_service_name = \"nnn",
    ] {
        assert!(refused.contains(expected), "{expected:?} in {refused}");
    }
}
