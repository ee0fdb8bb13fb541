//! Tests of the history format: reading and writing round trips, the reader's limits and
//! error lines, and pairing invokes with completions.

use super::*;

fn bid_invoke(index: u64, process: u64, amount: u64) -> Record {
    Record {
        index,
        process,
        event: EventType::Invoke,
        f: Function::Bid,
        auction: 1,
        request: format!("r{index}"),
        value: Some(Value::Bid(BidRequest {
            amount,
            bidder: process,
        })),
        time_ns: index * 10,
        error: None,
    }
}

fn completion(invoke: &Record, index: u64, event: EventType, value: Option<Value>) -> Record {
    Record {
        index,
        event,
        value,
        time_ns: index * 10,
        ..invoke.clone()
    }
}

fn write(records: &[Record]) -> Vec<u8> {
    let mut writer = HistoryWriter::new(Vec::new(), ReadLimits::default());
    for record in records {
        writer.append(record.clone()).expect("writes");
    }
    writer.into_inner()
}

#[test]
fn written_history_reads_back_identically() {
    let invoke = bid_invoke(0, 3, 100);
    let ok = completion(
        &invoke,
        1,
        EventType::Ok,
        Some(Value::BidReply { accepted: true }),
    );
    let bytes = write(&[invoke.clone(), ok.clone()]);
    let read = read_history(&bytes[..], ReadLimits::default()).expect("reads");
    assert_eq!(read, vec![invoke, ok]);
}

#[test]
fn format_matches_the_documented_example() {
    let line = concat!(
        r#"{"index":0,"process":1,"type":"invoke","f":"bid","auction":7,"request":"r-42","#,
        r#""value":{"bid":{"amount":150,"bidder":1}},"time_ns":1200}"#,
    );
    let records = read_history(line.as_bytes(), ReadLimits::default()).expect("reads");
    assert_eq!(
        records[0].value,
        Some(Value::Bid(BidRequest {
            amount: 150,
            bidder: 1
        }))
    );
    let read = r#"{"state":{"price":null,"leader":null,"closed":true,"outcome":"unsold"}}"#;
    let value: Value = serde_json::from_str(read).expect("parses");
    assert!(matches!(
        value,
        Value::State(AuctionView { closed: true, .. })
    ));
}

#[test]
fn malformed_line_is_reported_with_its_line_number() {
    let mut bytes = write(&[bid_invoke(0, 1, 100)]);
    bytes.extend_from_slice(b"{\"index\":1,\"process\":\n");
    let error = read_history(&bytes[..], ReadLimits::default()).expect_err("malformed");
    assert!(
        matches!(error, HistoryError::Json { line: 2, .. }),
        "{error}"
    );
}

#[test]
fn unknown_field_and_wrong_types_are_rejected() {
    for line in [
        concat!(
            r#"{"index":0,"process":1,"type":"invoke","f":"bid","auction":7,"#,
            r#""request":"r","time_ns":1,"extra":1}"#
        ),
        concat!(
            r#"{"index":0,"process":-1,"type":"invoke","f":"bid","auction":7,"#,
            r#""request":"r","time_ns":1}"#
        ),
        concat!(
            r#"{"index":0,"process":1,"type":"maybe","f":"bid","auction":7,"#,
            r#""request":"r","time_ns":1}"#
        ),
        "\u{0}\u{1}garbage",
    ] {
        let error = read_history(line.as_bytes(), ReadLimits::default()).expect_err(line);
        assert!(
            matches!(error, HistoryError::Json { line: 1, .. }),
            "{error}"
        );
    }
}

#[test]
fn overlong_line_is_rejected_without_reading_it_all() {
    let limits = ReadLimits {
        line_bytes_max: 64,
        records_max: 10,
    };
    let long = vec![b'x'; 10_000];
    let error = read_history(&long[..], limits).expect_err("too long");
    assert!(
        matches!(error, HistoryError::LineTooLong { line: 1, max: 64 }),
        "{error}"
    );
}

#[test]
fn index_must_count_lines_and_records_are_bounded() {
    let mut second = bid_invoke(0, 2, 200);
    second.index = 5;
    let mut bytes = write(&[bid_invoke(0, 1, 100)]);
    bytes.extend(serde_json::to_vec(&second).expect("serializes"));
    let error = read_history(&bytes[..], ReadLimits::default()).expect_err("index");
    assert!(matches!(
        error,
        HistoryError::IndexOutOfOrder {
            line: 2,
            found: 5,
            ..
        }
    ));

    let bytes = write(&[bid_invoke(0, 1, 100), bid_invoke(1, 2, 200)]);
    let limits = ReadLimits {
        records_max: 1,
        ..ReadLimits::default()
    };
    let error = read_history(&bytes[..], limits).expect_err("too many");
    assert!(matches!(error, HistoryError::TooManyRecords { max: 1 }));
}

#[test]
fn empty_line_is_an_error_but_a_final_newline_is_not() {
    let mut bytes = write(&[bid_invoke(0, 1, 100)]);
    assert_eq!(
        read_history(&bytes[..], ReadLimits::default())
            .expect("ok")
            .len(),
        1
    );
    bytes.push(b'\n');
    let error = read_history(&bytes[..], ReadLimits::default()).expect_err("empty");
    assert!(matches!(error, HistoryError::EmptyLine { line: 2 }));
}

#[test]
fn writer_refuses_a_record_the_reader_would_refuse() {
    let limits = ReadLimits {
        line_bytes_max: 50,
        records_max: 10,
    };
    let mut writer = HistoryWriter::new(Vec::new(), limits);
    let error = writer.append(bid_invoke(0, 1, 100)).expect_err("too long");
    assert!(matches!(
        error,
        HistoryError::RecordTooLong { index: 0, .. }
    ));
}

#[test]
fn invoke_without_completion_is_info() {
    let operations = pair(&[bid_invoke(0, 1, 100)]).expect("pairs");
    assert_eq!(operations[0].completion, Completion::Info);
    assert_eq!(operations[0].complete_ns, None);
}

#[test]
fn counts_group_operations_by_function_and_completion() {
    let first = bid_invoke(0, 1, 100);
    let records = [
        first.clone(),
        completion(
            &first,
            1,
            EventType::Ok,
            Some(Value::BidReply { accepted: true }),
        ),
        bid_invoke(2, 2, 200),
    ];
    let counts = count(&pair(&records).expect("pairs"));
    assert_eq!(
        counts[&Function::Bid],
        Counts {
            ok: 1,
            fail: 0,
            info: 1
        }
    );
}

#[test]
fn pairing_errors_name_the_line() {
    let invoke = bid_invoke(0, 1, 100);
    let reply = Some(Value::BidReply { accepted: true });
    let orphan = completion(&bid_invoke(0, 9, 1), 0, EventType::Ok, reply);
    assert!(matches!(
        pair(&[orphan]),
        Err(PairError::CompletionWithoutInvoke {
            line: 1,
            process: 9,
            ..
        })
    ));
    let twice = bid_invoke(1, 1, 200);
    assert!(matches!(
        pair(&[invoke.clone(), twice]),
        Err(PairError::ProcessAlreadyPending {
            line: 2,
            pending_line: 1,
            ..
        })
    ));
    let mut wrong_auction = completion(&invoke, 1, EventType::Ok, reply);
    wrong_auction.auction = 2;
    assert!(matches!(
        pair(&[invoke.clone(), wrong_auction]),
        Err(PairError::CompletionMismatch {
            line: 2,
            field: "auction",
            ..
        })
    ));
    let wrong_value = completion(&invoke, 1, EventType::Ok, Some(Value::NotFound));
    assert!(matches!(
        pair(&[invoke.clone(), wrong_value]),
        Err(PairError::BadValue { line: 2, .. })
    ));
    let mut early = completion(&invoke, 1, EventType::Fail, None);
    early.time_ns = 0;
    let mut late_invoke = invoke.clone();
    late_invoke.time_ns = 5;
    assert!(matches!(
        pair(&[late_invoke, early]),
        Err(PairError::CompletedBeforeInvoke { line: 2, .. })
    ));
    let mut long_id = invoke;
    long_id.request = "x".repeat(REQUEST_ID_BYTES_MAX + 1);
    assert!(matches!(
        pair(&[long_id]),
        Err(PairError::BadRequestId { line: 1 })
    ));
}
