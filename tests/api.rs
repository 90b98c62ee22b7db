//! The HTTP API over real sockets: provide on one server, find on another; readiness; every
//! kind of bad input answered with its status code and a JSON error.

mod common;

use actix::System;
use base64::Engine;
use parsec_actors::{local_network::dht_runtime, random_content, ContentId};
use serde_json::{json, Value};

use common::{client, http_fleet, lone_server};

/// Runs `test` inside an actix System with a DHT runtime beside it.
fn with_system<F, Fut>(test: F)
where
    F: FnOnce(tokio::runtime::Handle) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let runtime = dht_runtime(2).unwrap();
    let handle = runtime.handle().clone();
    System::new().block_on(test(handle));
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
}

async fn post_json(url: &str, body: Value) -> (u16, Value) {
    let mut response = client().post(url).send_json(&body).await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().limit(1 << 20).await.unwrap();
    (status, body)
}

#[test]
fn provide_on_one_server_is_found_by_another() {
    with_system(|runtime| async move {
        let (_fleet, urls, _servers) = http_fleet(20, 3, &runtime).await;
        let content = random_content(&mut rand::thread_rng());
        let expected_cid = ContentId::for_content(&content).to_string();
        let encoded = base64::engine::general_purpose::STANDARD.encode(&content);

        let mut response = client()
            .post(format!("{}/provide", urls[0]))
            .insert_header(("x-scheduler-id", "test"))
            .send_json(&json!({ "Content": encoded }))
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert_eq!(
            response.headers().get("content-type").unwrap(),
            "application/json"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["CID"], expected_cid);
        assert!(expected_cid.starts_with("Qm"));
        assert_eq!(body["Measurements"][0]["Step"], "provide");
        assert_eq!(body["Measurements"][0]["Error"], "");
        assert!(body["Measurements"][0]["Duration"].as_i64().unwrap() > 0);
        assert!(body["RoutingTableSize"].as_u64().unwrap() > 0);

        let (status, body) = post_json(&format!("{}/retrieve/{expected_cid}", urls[1]), json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["CID"], expected_cid);
        assert_eq!(body["Measurements"][0]["Step"], "retrieval");
        assert_eq!(body["Measurements"][0]["Error"], "", "{body}");
        assert!(body["Measurements"][0]["Duration"].as_i64().unwrap() > 0);

        // The same content as a CIDv1, with an empty body: the multihash is what is looked up.
        let v1 =
            cid::Cid::new_v1(0x70, *cid::Cid::try_from(expected_cid.as_str()).unwrap().hash()).to_string();
        let mut response = client()
            .post(format!("{}/retrieve/{v1}", urls[2]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["Measurements"][0]["Error"], "", "{body}");
    });
}

#[test]
fn provide_accepts_content_as_a_byte_array() {
    with_system(|runtime| async move {
        let (_fleet, urls, _servers) = http_fleet(10, 2, &runtime).await;
        let (status, body) =
            post_json(&format!("{}/provide", urls[0]), json!({ "Content": [1, 2, 3] })).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["CID"], ContentId::for_content(&[1, 2, 3]).to_string());
    });
}

#[test]
fn unknown_content_is_not_found() {
    with_system(|runtime| async move {
        let (_fleet, urls, _servers) = http_fleet(15, 2, &runtime).await;
        let cid = ContentId::for_content(&random_content(&mut rand::thread_rng()));
        let (status, body) = post_json(&format!("{}/retrieve/{cid}", urls[0]), json!({})).await;
        assert_eq!(status, 200);
        assert_eq!(body["Measurements"][0]["Error"], "not found");
        assert_eq!(body["Measurements"][0]["Step"], "retrieval");
    });
}

#[test]
fn readiness_follows_the_routing_table() {
    with_system(|runtime| async move {
        let (_fleet, urls, _servers) = http_fleet(5, 1, &runtime).await;
        let (lone_peer, lone) = lone_server(&runtime, None).await;
        let lone_url = lone.base_url();

        let response = client()
            .get(format!("{lone_url}/readiness"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status().as_u16(),
            503,
            "a node that knows no peer is not ready"
        );

        // Joining through a peer of the fleet makes it ready.
        let fleet_readiness = client()
            .get(format!("{}/readiness", urls[0]))
            .send()
            .await
            .unwrap();
        assert_eq!(fleet_readiness.status().as_u16(), 200);
        let bootstrap_peer = _fleet.peers[0].clone();
        lone_peer
            .add_peers(vec![(
                bootstrap_peer.peer_id(),
                bootstrap_peer.listen_addrs()[0].clone(),
            )])
            .await
            .unwrap();
        // Told about a peer is not having reached it.
        let told = client()
            .get(format!("{lone_url}/readiness"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            told.status().as_u16(),
            503,
            "an entry never contacted counts as a peer"
        );
        lone_peer
            .join(std::time::Duration::from_millis(200))
            .await
            .unwrap();
        let mut response = client()
            .get(format!("{lone_url}/readiness"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["ready"], true);
        assert!(body["routing_table_size"].as_u64().unwrap() >= 1, "{body}");
    });
}

#[test]
fn bad_input_gets_a_status_and_a_json_error() {
    with_system(|runtime| async move {
        let (_peer, lone) = lone_server(&runtime, None).await;
        let url = lone.base_url();
        let raw = |method: &str, path: &str, body: Vec<u8>| {
            let request = client()
                .request(method.parse().unwrap(), format!("{url}{path}"))
                .insert_header(("content-type", "application/json"));
            async move {
                let mut response = request.send_body(body).await.unwrap();
                let status = response.status().as_u16();
                let content_type = response.headers().get("content-type").cloned();
                let body: Value = response.json().await.unwrap_or(Value::Null);
                assert_eq!(content_type.unwrap(), "application/json", "{status} {body}");
                assert!(
                    body["error"].as_str().is_some_and(|e| !e.is_empty()),
                    "{status}: {body}"
                );
                (status, body["error"].as_str().unwrap().to_owned())
            }
        };
        let huge = vec![b' '; (1 << 20) + 1];

        let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
            ("POST", "/provide", b"{not json".to_vec(), 400, "invalid JSON"),
            ("POST", "/provide", b"{}".to_vec(), 400, "Content"),
            (
                "POST",
                "/provide",
                br#"{"Content": "***"}"#.to_vec(),
                400,
                "base64",
            ),
            (
                "POST",
                "/provide",
                br#"{"Content": [1, 999]}"#.to_vec(),
                400,
                "base64 string or an array",
            ),
            ("POST", "/provide", huge.clone(), 413, "exceeds"),
            ("POST", "/retrieve/not-a-cid", b"{}".to_vec(), 400, "invalid CID"),
            (
                "POST",
                "/retrieve/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
                huge,
                413,
                "exceeds",
            ),
            ("GET", "/provide", Vec::new(), 405, "does not accept GET"),
            ("POST", "/readiness", Vec::new(), 405, "does not accept POST"),
            ("GET", "/nope", Vec::new(), 404, "no route"),
        ];
        for (method, path, body, status, needle) in cases {
            let (got, error) = raw(method, path, body).await;
            assert_eq!(got, status, "{method} {path}: {error}");
            assert!(
                error.contains(needle),
                "{method} {path}: {error:?} lacks {needle:?}"
            );
        }

        // A scheduler id longer than any real one is refused before any work (every id seen
        // would be a metrics label for the life of the process); 64 bytes still pass.
        for (length, status) in [(100_000, 400), (64, 404)] {
            let mut response = client()
                .post(format!(
                    "{url}/retrieve/QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG"
                ))
                .insert_header(("x-scheduler-id", "s".repeat(length)))
                .timeout(std::time::Duration::from_secs(30))
                .send_json(&json!({}))
                .await
                .unwrap();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            // A lone server reaches no peer: not found (404) or unreachable (503), never 400.
            let got = response.status().as_u16();
            if status == 400 {
                assert_eq!(got, 400, "{body}");
                assert!(body["error"].as_str().unwrap().contains("at most 64"), "{body}");
            } else {
                assert_ne!(got, 400, "{body}");
            }
        }
    });
}

#[test]
fn a_token_guards_provide_and_retrieve_but_not_readiness() {
    with_system(|runtime| async move {
        let token = parsec::api::ApiToken::new("s3cret").unwrap();
        let (_peer, lone) = lone_server(&runtime, Some(token)).await;
        let url = lone.base_url();
        let cid = ContentId::for_content(b"guarded").to_string();
        let provide = json!({ "Content": "aGVsbG8=" });
        for authorization in [None, Some("Bearer wrong"), Some("s3cret")] {
            for (path, body) in [
                ("/provide".to_owned(), provide.clone()),
                (format!("/retrieve/{cid}"), json!({})),
            ] {
                let mut request = client().post(format!("{url}{path}"));
                if let Some(value) = authorization {
                    request = request.insert_header(("authorization", value));
                }
                let mut response = request.send_json(&body).await.unwrap();
                assert_eq!(response.status().as_u16(), 401, "{path} with {authorization:?}");
                assert_eq!(response.headers().get("www-authenticate").unwrap(), "Bearer");
                let body: Value = response.json().await.unwrap();
                assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
            }
        }
        // The right token passes the guard (the lone node then answers on its own terms).
        let response = client()
            .post(format!("{url}/retrieve/{cid}"))
            .insert_header(("authorization", "Bearer s3cret"))
            .send_json(&json!({}))
            .await
            .unwrap();
        assert_ne!(response.status().as_u16(), 401);
        // Health checks need no token.
        let readiness = client().get(format!("{url}/readiness")).send().await.unwrap();
        assert_eq!(
            readiness.status().as_u16(),
            503,
            "a lone node is not ready, and not unauthorised"
        );
    });
}
