//! The HTTP API under arbitrary requests (property-based, bounded): the routes of parsec's
//! OpenAPI file and of the pubsub extension, with arbitrary methods, path parameters, query
//! strings, headers and bodies (well-formed and not). Whatever comes, a `--gossipsub` server
//! answers with a status that says whose fault it was (never 500, 502 or 504: it has no node
//! further on), every error as JSON `{"error": "…"}`, and stays up.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    time::Duration,
};

use proptest::{prelude::*, test_runner::Config};

use super::*;

/// Routes: parsec's three, the extension's, the telemetry-free rest, and nonsense.
fn path() -> impl Strategy<Value = String> {
    let parameter = prop_oneof![
        Just("3f1c0b62-7b1e-4c38-9a55-2f6f0d9d1a11".to_owned()),
        Just("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy".to_owned()),
        "[a-zA-Z0-9]{0,60}",
        "(%[0-9A-F]{2}){1,20}",
        "\\PC{0,40}".prop_map(|s| s.replace(['/', '?', '#', ' ', '\r', '\n'], "")),
        (0usize..3000).prop_map(|n| "x".repeat(n)),
    ];
    (
        prop_oneof![
            Just("/provide"),
            Just("/retrieve/{}"),
            Just("/readiness"),
            Just("/healthz"),
            Just("/pubsub/subscribe"),
            Just("/pubsub/unsubscribe"),
            Just("/pubsub/publish"),
            Just("/pubsub/messages/{}"),
            Just("/pubsub/topics/{}"),
            Just("/pubsub/clock"),
            Just("/{}"),
            Just("/pubsub/{}/{}"),
        ],
        parameter,
    )
        .prop_map(|(route, parameter)| route.replace("{}", &escaped(&parameter)))
}

/// `text` as a client puts it in a request target: bytes outside the unreserved set
/// percent-encoded (a raw `%` kept, so that broken escapes are tried too). A raw non-ASCII byte is
/// not HTTP, and actix-http refuses it before any route sees it.
fn escaped(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'%' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Query strings, `wait_ms` above all: never a valid wait over 50 ms, so a case ends quickly
/// (a wait beyond 60 s is refused, which is tried).
fn query() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        (0u64..=50).prop_map(|ms| format!("?wait_ms={ms}")),
        (60_001u64..).prop_map(|ms| format!("?wait_ms={ms}")),
        Just("?wait_ms=-1".to_owned()),
        Just("?wait_ms=18446744073709551616".to_owned()),
        Just("?wait_ms=1&wait_ms=2".to_owned()),
        "\\?[a-z_=&%0-9]{0,40}",
    ]
}

/// Bodies: JSON shaped like the requests (with arbitrary values), arbitrary JSON-ish text, bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just(json!(null)),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|x| json!(x)),
        "\\PC{0,80}".prop_map(|s| json!(s)),
        Just(json!("aGVsbG8=")),
        Just(json!([1, 2, 300])),
        Just(json!(uuid::Uuid::new_v4().to_string())),
        (16usize..70_000).prop_map(|n| json!(n)),
    ];
    prop_oneof![
        Just(Vec::new()),
        (value.clone(), value.clone(), value.clone(), value).prop_map(|(a, b, c, d)| {
            json!({"Content": a, "topic": b, "message_id": c, "size": d})
                .to_string()
                .into_bytes()
        }),
        "\\PC{0,200}".prop_map(String::into_bytes),
        prop::collection::vec(any::<u8>(), 0..2048),
    ]
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let content_type = prop_oneof![
        Just(None),
        Just(Some("application/json".to_owned())),
        Just(Some("application/problem+json".to_owned())),
        Just(Some("text/plain".to_owned())),
        "[ -~]{0,40}".prop_map(Some),
    ];
    let scheduler = prop_oneof![Just(None), "[ -~]{0,300}".prop_map(Some)];
    (content_type, scheduler).prop_map(|(content_type, scheduler)| {
        let mut headers = Vec::new();
        if let Some(value) = content_type {
            headers.push(("Content-Type".to_owned(), value));
        }
        if let Some(value) = scheduler {
            headers.push(("x-scheduler-id".to_owned(), value));
        }
        headers
    })
}

/// One request over its own connection; the status and body of the answer.
fn exchange(
    address: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request = format!("{method} {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request += &format!("{name}: {value}\r\n");
    }
    request += &format!("Content-Length: {}\r\n\r\n", body.len());
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    // The server may answer (and close) before it read everything: then writing fails.
    let _ = stream.write_all(&bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {method} {target}: {text:?}"));
    let body = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or_else(Vec::new, |at| answer[at + 4..].to_vec());
    (status, body)
}

#[test]
fn any_request_gets_a_status_that_says_whose_fault_and_a_json_error_and_the_server_stays_up() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fuzz.sqlite").display());
    let server = ServerProcess::start(&["--gossipsub", "--database-url", &url]);
    let address = server.http.trim_start_matches("http://").to_owned();
    let methods = prop::sample::select(vec!["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]);
    let config = Config {
        cases: 1000,
        // A failure is shrunk, within bounds.
        max_shrink_iters: 200,
        failure_persistence: None,
        ..Config::default()
    };
    proptest!(config, |(method in methods, path in path(), query in query(), headers in headers(), body in body())| {
        let target = format!("{path}{query}");
        let (status, answer) = exchange(&address, method, &target, &headers, &body);
        prop_assert!(
            !matches!(status, 500 | 502 | 504) && status < 600,
            "{method} {target} {headers:?} → {status}: {}", String::from_utf8_lossy(&answer)
        );
        let answer_json: Value = serde_json::from_slice(&answer).unwrap_or(Value::Null);
        if path == "/readiness" && status == 503 && method != "HEAD" {
            // Not an error: the readiness document of a server that reached nobody.
            prop_assert_eq!(&answer_json["ready"], &json!(false), "{}", String::from_utf8_lossy(&answer));
        } else if status >= 400 && method != "HEAD" {
            let error = answer_json;
            prop_assert!(
                error["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{method} {target} → {status} without a JSON error: {:?}", String::from_utf8_lossy(&answer)
            );
        }
    });
    let (status, _) = exchange(&address, "GET", "/pubsub/clock", &[], &[]);
    assert_eq!(status, 200, "the server stopped answering");
    assert!(server.terminate().success());
}
