//! The deployment examples in deploy/gateway/ stay correct: the Kubernetes
//! YAML parses (PyYAML, via python3) into what it should be, and every
//! flag they pass is one the binary has.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/gateway")
}

/// Every `--flag` the binary accepts, from its `--help`.
fn known_flags() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_spindle-rest-gateway"))
        .arg("--help")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .filter(|w| w.starts_with("--"))
        .map(|w| w.trim_end_matches(',').to_owned())
        .collect()
}

fn assert_known(flags: &[String], args: impl IntoIterator<Item = String>) {
    for arg in args {
        if let Some(flag) = arg.strip_prefix("--") {
            let name = format!("--{}", flag.split('=').next().unwrap());
            assert!(flags.contains(&name), "unknown flag {name}");
        }
    }
}

fn ms_flag(args: &[String], name: &str) -> u64 {
    let prefix = format!("--{name}=");
    args.iter()
        .find_map(|a| a.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix}"))
}

#[test]
fn kubernetes_manifest() {
    let file = deploy_dir().join("kubernetes.yaml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump(list(yaml.safe_load_all(open(sys.argv[1]))), sys.stdout)",
        ])
        .arg(&file)
        .output()
        .expect("python3 (with PyYAML: apt-get install python3-yaml) is needed");
    assert!(
        out.status.success(),
        "the YAML does not parse: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let kind = |k: &str| {
        docs.iter()
            .find(|d| d["kind"] == k)
            .unwrap_or_else(|| panic!("no {k}"))
    };
    let (secret, deployment, service) = (kind("Secret"), kind("Deployment"), kind("Service"));
    kind("PodDisruptionBudget");

    let spec = &deployment["spec"];
    assert!(spec["replicas"].as_u64().unwrap() >= 2, "several replicas");
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(&spec["selector"]["matchLabels"], labels);
    assert_eq!(&service["spec"]["selector"], labels);
    let pod = &spec["template"]["spec"];
    let container = &pod["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    assert_known(&known_flags(), args.iter().cloned());
    assert!(args.contains(&"--listen=0.0.0.0:8079".to_owned()));
    assert_eq!(container["ports"][0]["containerPort"], 8079);
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "http");

    assert_eq!(
        container["livenessProbe"]["httpGet"]["path"],
        "/healthz?live"
    );
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/healthz");
    for probe in ["livenessProbe", "readinessProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "http");
    }
    assert!(container["resources"]["requests"]["cpu"].is_string());
    assert!(container["resources"]["limits"]["memory"].is_string());

    // The token file is the Secret's key, mounted where --token-file says.
    let mount = &container["volumeMounts"][0];
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .unwrap();
    assert_eq!(volume["secret"]["secretName"], secret["metadata"]["name"]);
    let key = secret["stringData"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let token_file = format!(
        "--token-file={}/{key}",
        mount["mountPath"].as_str().unwrap()
    );
    assert!(args.contains(&token_file), "{token_file} in {args:?}");

    // SIGKILL never cuts a drain short.
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap();
    let drain = ms_flag(&args, "drain-timeout-ms") / 1000;
    assert!(pod["terminationGracePeriodSeconds"].as_u64().unwrap() > pause + drain);
}

#[test]
fn systemd_unit() {
    let unit = std::fs::read_to_string(deploy_dir().join("spindle-rest-gateway.service")).unwrap();
    let exec = unit
        .split("ExecStart=")
        .nth(1)
        .unwrap()
        .split("\nExecReload")
        .next()
        .unwrap()
        .replace("\\\n", " ");
    let args: Vec<String> = exec.split_whitespace().skip(1).map(str::to_owned).collect();
    assert_known(&known_flags(), args.iter().cloned());
    let drain_ms: u64 = args
        .iter()
        .skip_while(|a| *a != "--drain-timeout-ms")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let stop: u64 = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec=")?.parse().ok())
        .unwrap();
    assert!(stop * 1000 > drain_ms, "TimeoutStopSec outlasts the drain");
    assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    assert!(unit.contains("KillSignal=SIGTERM"));
}
