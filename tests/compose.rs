//! The compose stack, checked without a Docker engine: the real `docker-compose` parser accepts
//! it, the real `promtool` accepts its Prometheus configuration, the dashboard is provisioned
//! against the provisioned datasource, and the bootstrap address names the peer id that the
//! fixed identity key really gives.

mod common;

use std::{path::Path, process::Command};

use parsec::testing::process::ServerProcess;
use serde_json::Value;

const COMPOSE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/compose");

fn tool(name: &str, package: &str) -> Command {
    Command::new(parsec::testing::process::installed(name, package))
}

fn compose_config() -> String {
    let output = tool("docker-compose", "docker-compose")
        .args(["-f", &format!("{COMPOSE}/docker-compose.yml"), "config"])
        .env("GRAFANA_ADMIN_PASSWORD", "a-password-of-the-operator")
        .output()
        .unwrap();
    parsec::testing::process::expect_success(&output);
    String::from_utf8(output.stdout).unwrap()
}

/// The block of `service` in the resolved compose file: its lines up to the next service.
fn service(config: &str, service: &str) -> String {
    let mut lines = config.lines().skip_while(|l| *l != format!("  {service}:"));
    assert!(lines.next().is_some(), "no {service} in\n{config}");
    lines
        .take_while(|l| l.starts_with("   "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Hardened by default: nothing published beyond the loopback interface, the database not at
/// all, no anonymous Grafana and no default admin password, a bounded trace store, a liveness
/// check on the scheduler, and the alert rules loaded by Prometheus.
#[test]
fn the_stack_publishes_nothing_it_need_not_and_checks_the_scheduler_is_alive() {
    let config = compose_config();
    assert!(!service(&config, "postgres").contains("ports:"), "{config}");
    for published in ["grafana", "prometheus", "jaeger"] {
        let block = service(&config, published);
        let ports: Vec<&str> = block
            .lines()
            .filter(|l| l.ends_with("/tcp") || l.ends_with("/udp"))
            .collect();
        assert!(!ports.is_empty(), "{published}: {block}");
        assert!(
            ports.iter().all(|p| p.contains("127.0.0.1:")),
            "{published} publishes beyond the loopback: {ports:?}"
        );
    }
    let grafana = service(&config, "grafana");
    assert!(
        grafana.contains("GF_AUTH_ANONYMOUS_ENABLED: 'false'")
            || grafana.contains("GF_AUTH_ANONYMOUS_ENABLED: \"false\""),
        "{grafana}"
    );
    assert!(
        grafana.contains("GF_SECURITY_ADMIN_PASSWORD: a-password-of-the-operator"),
        "{grafana}"
    );
    assert!(service(&config, "jaeger").contains("MEMORY_MAX_TRACES"));
    let scheduler = service(&config, "scheduler");
    assert!(
        scheduler.contains("--liveness") && scheduler.contains("127.0.0.1:9464"),
        "{scheduler}"
    );
    assert!(service(&config, "prometheus").contains("alerts.yml:/etc/prometheus/alerts.yml"));

    // Without the Grafana password the stack refuses to start, and says what to set.
    let output = tool("docker-compose", "docker-compose")
        .args(["-f", &format!("{COMPOSE}/docker-compose.yml"), "config"])
        .env_remove("GRAFANA_ADMIN_PASSWORD")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("set GRAFANA_ADMIN_PASSWORD"));
}

/// The alert rules are valid, and each alert fires on the series it is written for after its
/// `for`, and not on a healthy deployment (`promtool test rules`, cases in alerts.test.yml).
#[test]
fn the_alerts_fire_when_they_should_and_only_then() {
    let output = tool("promtool", "prometheus")
        .args(["check", "rules", &format!("{COMPOSE}/prometheus/alerts.yml")])
        .output()
        .unwrap();
    parsec::testing::process::expect_success(&output);
    let output = tool("promtool", "prometheus")
        .current_dir(format!("{COMPOSE}/prometheus"))
        .args(["test", "rules", "alerts.test.yml"])
        .output()
        .unwrap();
    parsec::testing::process::expect_success(&output);
    let tests = std::fs::read_to_string(format!("{COMPOSE}/prometheus/alerts.test.yml")).unwrap();
    let rules = std::fs::read_to_string(format!("{COMPOSE}/prometheus/alerts.yml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(
            tests.contains(&format!(
                "alertname: {alert}\n        exp_alerts:\n          - exp_labels"
            )),
            "no test case where {alert} fires"
        );
    }
}

#[test]
fn docker_compose_accepts_the_stack() {
    let config = compose_config();
    for service in [
        "postgres:",
        "server-1:",
        "server-2:",
        "server-3:",
        "scheduler:",
        "jaeger:",
        "prometheus:",
        "grafana:",
    ] {
        assert!(
            config.contains(&format!("\n  {service}\n")),
            "no {service} in\n{config}"
        );
    }
    assert!(config.contains("PARSEC_DATABASE_HOST: postgres"), "{config}");
}

#[test]
fn promtool_accepts_the_prometheus_configuration() {
    let output = tool("promtool", "prometheus")
        .args(["check", "config", &format!("{COMPOSE}/prometheus/prometheus.yml")])
        .output()
        .unwrap();
    parsec::testing::process::expect_success(&output);
}

#[test]
fn the_dashboard_uses_the_provisioned_datasource() {
    let datasource = std::fs::read_to_string(format!(
        "{COMPOSE}/grafana/provisioning/datasources/prometheus.yml"
    ))
    .unwrap();
    assert!(datasource.contains("uid: prometheus") && datasource.contains("url: http://prometheus:9090"));
    let provider =
        std::fs::read_to_string(format!("{COMPOSE}/grafana/provisioning/dashboards/parsec.yml")).unwrap();
    assert!(provider.contains("path: /var/lib/grafana/dashboards"));
    let compose = std::fs::read_to_string(format!("{COMPOSE}/docker-compose.yml")).unwrap();
    assert!(compose.contains("./grafana/dashboards:/var/lib/grafana/dashboards"));

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{COMPOSE}/grafana/dashboards/parsec.json")).unwrap(),
    )
    .unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 5);
    for panel in panels {
        assert_eq!(panel["datasource"]["uid"], "prometheus", "{}", panel["title"]);
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{}", panel["title"]);
        assert!(targets
            .iter()
            .all(|t| t["expr"].as_str().is_some_and(|e| !e.is_empty())));
    }
}

/// `(service, identity key, bootstrap addresses)` of each server in the compose file.
fn servers(compose: &str) -> Vec<(String, String, Vec<String>)> {
    compose
        .split("\n  server-")
        .skip(1)
        .map(|block| {
            let name = format!("server-{}", block.split(':').next().unwrap());
            let value = |key: &str| {
                block
                    .split(key)
                    .nth(1)
                    .and_then(|rest| rest.lines().next())
                    .map(|v| v.trim().trim_matches('"').to_owned())
                    .unwrap_or_else(|| panic!("{name} has no {key}"))
            };
            let bootstrap = value("PARSEC_SERVER_DHT_BOOTSTRAP: ")
                .split(',')
                .map(str::to_owned)
                .collect();
            let key = value("PARSEC_SERVER_IDENTITY_KEY: ");
            (name, key, bootstrap)
        })
        .collect()
}

/// Every server bootstraps from all the others, named by the peer id their identity key gives
/// (checked by starting a real server with each key), so any of them can start first.
#[test]
fn every_server_bootstraps_from_the_others_by_their_identity_keys() {
    let compose = std::fs::read_to_string(Path::new(COMPOSE).join("docker-compose.yml")).unwrap();
    let servers = servers(&compose);
    assert_eq!(servers.len(), 3, "{servers:?}");
    let dir = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}", dir.path().join("identity.sqlite").display());
    let peer_ids: Vec<String> = servers
        .iter()
        .map(|(_, key, _)| {
            let server = ServerProcess::start(&["--identity-key", key, "--database-url", &database]);
            server.tcp_multiaddr.rsplit("/p2p/").next().unwrap().to_owned()
        })
        .collect();
    for (i, (name, _, bootstrap)) in servers.iter().enumerate() {
        let mut expected: Vec<String> = servers
            .iter()
            .zip(&peer_ids)
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, ((other, _, _), peer))| format!("/dns4/{other}/tcp/4001/p2p/{peer}"))
            .collect();
        let mut actual = bootstrap.clone();
        expected.sort();
        actual.sort();
        assert_eq!(actual, expected, "{name}");
    }
}

/// The ECS task definition that docs/operations.md sketches, checked as RegisterTaskDefinition
/// would take it: against the ECS API's own schema (botocore's service model, from PyPI), and
/// against the rules that schema cannot say.
#[test]
fn the_ecs_task_definition_in_the_docs_is_one_ecs_accepts() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md")).unwrap();
    let section = docs.split("## Running fleets on ECS").nth(1).unwrap();
    let json = section
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let task: Value = serde_json::from_str(json).unwrap();

    const VALIDATE: &str = "import json, sys\n\
        import botocore.session\n\
        from botocore.validate import ParamValidator\n\
        shape = botocore.session.get_session().get_service_model('ecs')\\\n\
            .operation_model('RegisterTaskDefinition').input_shape\n\
        report = ParamValidator().validate(json.load(sys.stdin), shape)\n\
        print(report.generate_report())\n\
        sys.exit(1 if report.has_errors() else 0)\n";
    // botocore lives in the repository's virtualenv (.ci/run; tests/py/requirements.txt).
    let python = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/.venv/bin/python");
    assert!(
        Path::new(python).exists(),
        "no {python}: run `python3 -m venv tests/py/.venv && tests/py/.venv/bin/pip install -r tests/py/requirements.txt` (.ci/run does)"
    );
    let mut python = Command::new(python)
        .args(["-c", VALIDATE])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut python.stdin.take().unwrap(), json.as_bytes()).unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "RegisterTaskDefinition would refuse the sketch:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

    // What the schema cannot say.
    assert_eq!(
        task["networkMode"], "awsvpc",
        "the server registers its awsvpc address"
    );
    let container = &task["containerDefinitions"][0];
    if container["secrets"].is_array() {
        assert!(
            task["executionRoleArn"].is_string(),
            "secrets need an executionRoleArn"
        );
    }
    assert!(task["requiresCompatibilities"].is_array());
    assert!(container["logConfiguration"].is_object());
    let stop_timeout = container["stopTimeout"].as_u64().unwrap();
    assert!(stop_timeout <= 120, "ECS caps stopTimeout at 120 s");
    let grace = container["environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "PARSEC_SERVER_SHUTDOWN_GRACE")
        .and_then(|e| e["value"].as_str())
        .expect("the sketch sets the shutdown grace");
    let health = container["healthCheck"]["command"].to_string();
    assert!(
        health.contains("--liveness") && health.contains(":9464"),
        "ECS restarts an unhealthy container: check liveness, {health}"
    );
    // The CA bundle is where the image puts it.
    let ca = container["environment"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "PARSEC_DATABASE_SSL_ROOT_CERT")
        .and_then(|e| e["value"].as_str())
        .expect("the sketch verifies RDS's certificate");
    let dockerfile = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(
        dockerfile.lines().any(|l| l.starts_with("ADD ")
            && l.contains("truststore.pki.rds.amazonaws.com")
            && l.ends_with(ca)),
        "the image does not contain {ca}"
    );
    let grace = humantime::parse_duration(grace).unwrap().as_secs();
    assert!(
        grace < stop_timeout,
        "a grace of {grace} s outlives the {stop_timeout} s stopTimeout"
    );
}
