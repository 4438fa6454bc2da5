//! The gateway in front of a real 3-master, 3-replica Redis Cluster on
//! loopback (tests/support): routing, pipelines across slots, transactions,
//! scripts per node, a reshard (ASK, then MOVED), a crashed master and a
//! manual failover. Each test has a cluster of its own, since several
//! change its layout.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};
use spindle_rest_gateway::Config;
use support::{cli, send, Cluster, Gw, TOKEN};

async fn gateway(cluster: &Cluster) -> Gw {
    let seeds = cluster.seeds();
    let mut config = Config::new(seeds[0].clone(), TOKEN);
    config.redis = seeds[..2].to_vec();
    config.cluster = true;
    Gw::start(config).await
}

fn ok(value: Value) -> (StatusCode, Value) {
    (StatusCode::OK, json!({ "result": value }))
}

async fn metric(gw: &Gw, line_start: &str) -> f64 {
    let text = gw
        .get("/metrics")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(line_start)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_pipelines_and_transactions() {
    let cluster = Cluster::start();
    let gw = gateway(&cluster).await;

    // Keys land on the master that serves their slot: read them back from
    // that node directly (redis-cli without -c follows no redirect).
    for key in ["a", "b", "foo", "{user1}:cart"] {
        assert_eq!(
            gw.cmd(json!(["SET", key, format!("v-{key}")])).await,
            ok(json!("OK"))
        );
        let master = cluster.master_of(key);
        assert_eq!(
            cli(master, &["GET", key]).trim(),
            format!("v-{key}"),
            "{key}"
        );
    }
    let masters = cluster.masters();
    assert_eq!(masters.len(), 3);
    let on = |port: u16| cli(port, &["DBSIZE"]).trim().parse::<u64>().unwrap();
    assert!(
        masters.iter().filter(|&&m| on(m) > 0).count() >= 2,
        "keys spread over masters"
    );

    // A pipeline across slots: per-slot order kept, answers in request order.
    let (status, body) = gw
        .pipeline(json!([
            ["SET", "a", "1"],
            ["SET", "b", "x"],
            ["INCR", "a"],
            ["APPEND", "b", "y"],
            ["GET", "a"],
            ["HSET", "a", "f", "v"],
            ["GET", "b"],
            ["MGET", "b", "nope", "a"],
            ["PING"],
        ]))
        .await;
    assert_eq!(status, StatusCode::OK);
    let slots = body.as_array().unwrap();
    assert_eq!(
        slots[..5],
        [
            json!({"result": "OK"}),
            json!({"result": "OK"}),
            json!({"result": 2}),
            json!({"result": 2}),
            json!({"result": "2"})
        ]
    );
    assert!(
        body[5]["error"].as_str().unwrap().starts_with("WRONGTYPE"),
        "{body}"
    );
    assert_eq!(body[6], json!({"result": "xy"}));
    assert_eq!(body[7], json!({"result": ["xy", null, "2"]}));
    assert_eq!(body[8], json!({"result": "PONG"}));

    // Multi-key commands are split per slot and put back together.
    assert_eq!(
        gw.cmd(json!(["MSET", "k1", "1", "k2", "2", "k3", "3"]))
            .await,
        ok(json!("OK"))
    );
    assert_eq!(
        gw.cmd(json!(["MGET", "k3", "k1", "k2"])).await,
        ok(json!(["3", "1", "2"]))
    );
    assert_eq!(
        gw.cmd(json!(["EXISTS", "k1", "k2", "nope", "k3"])).await,
        ok(json!(3))
    );
    assert_eq!(
        gw.cmd(json!(["DEL", "k1", "k2", "nope"])).await,
        ok(json!(2))
    );
    // Commands on every master: summed, concatenated, all-or-nothing.
    let dbsize: u64 = masters.iter().map(|&m| on(m)).sum();
    assert_eq!(gw.cmd(json!(["DBSIZE"])).await, ok(json!(dbsize)));
    let (_, keys) = gw.cmd(json!(["KEYS", "*"])).await;
    assert_eq!(keys["result"].as_array().unwrap().len() as u64, dbsize);
    // Not splittable: Redis's own CROSSSLOT, as a Redis error (400).
    let (status, body) = gw.cmd(json!(["SUNION", "a", "b"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("CROSSSLOT"),
        "{body}"
    );
    // SCAN's cursor belongs to one node: refused, naming it.
    let (status, body) = gw.cmd(json!(["SCAN", "0"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["error"].as_str().unwrap().contains("'SCAN'"), "{body}");

    // A transaction within one slot runs on its master...
    let (status, body) = send(gw.post("/multi-exec").json(&json!([
        ["SET", "{user1}:n", "10"],
        ["INCRBY", "{user1}:n", "5"],
        ["GET", "{user1}:n"],
    ])))
    .await;
    assert_eq!(
        (status, body),
        (
            StatusCode::OK,
            json!([{"result": "OK"}, {"result": 15}, {"result": "15"}])
        )
    );
    let master = cluster.master_of("{user1}:n");
    assert!(cli(master, &["INFO", "commandstats"]).contains("cmdstat_exec:calls=1"));
    // ...one across slots is refused before reaching Redis, naming CROSSSLOT.
    for batch in [
        json!([["SET", "a", "1"], ["SET", "b", "2"]]),
        json!([["MGET", "a", "b"]]),
    ] {
        let (status, body) = send(gw.post("/multi-exec").json(&batch)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{batch}");
        assert!(
            body["error"].as_str().unwrap().starts_with("CROSSSLOT"),
            "{body}"
        );
    }
    assert_eq!(
        gw.cmd(json!(["GET", "b"])).await,
        ok(json!("xy")),
        "nothing ran"
    );
    let (status, body) = send(gw.post("/multi-exec").json(&json!([["FLUSHALL"]]))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("'FLUSHALL'"),
        "{body}"
    );

    // Health reports the cluster without a single address.
    let (status, body) = send(gw.http.get(gw.url("/healthz"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    assert_eq!(body["redis"], "ok");
    assert_eq!(body["masters"], 3);
    assert_eq!(body["masters_reachable"], 3);
    assert_eq!(body["slots_covered"], 16384);
    let text = body.to_string();
    assert!(
        !text.contains("127.0.0.1") && !masters.iter().any(|p| text.contains(&p.to_string())),
        "{text}"
    );
    assert_eq!(metric(&gw, "spindle_gateway_cluster_masters").await, 3.0);
    assert_eq!(
        metric(&gw, "spindle_gateway_cluster_slots_covered").await,
        16384.0
    );

    // FLUSHALL reaches every master.
    assert_eq!(gw.cmd(json!(["FLUSHALL"])).await, ok(json!("OK")));
    assert!(masters.iter().all(|&m| on(m) == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_are_loaded_per_node() {
    let cluster = Cluster::start();
    let gw = gateway(&cluster).await;
    let script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    let (_, body) = gw.cmd(json!(["SCRIPT", "LOAD", script])).await;
    let sha = body["result"].as_str().unwrap().to_owned();
    // SCRIPT LOAD reached every master, and SCRIPT EXISTS asks them all.
    for master in cluster.masters() {
        assert_eq!(
            cli(master, &["SCRIPT", "EXISTS", &sha]).trim(),
            "1",
            "{master}"
        );
    }
    assert_eq!(
        gw.cmd(json!(["SCRIPT", "EXISTS", &sha, "0".repeat(40)]))
            .await,
        ok(json!([1, 0]))
    );
    assert_eq!(
        gw.cmd(json!(["EVALSHA", &sha, 1, "{s}k", 5])).await,
        ok(json!(5))
    );

    // One master loses its scripts behind the gateway's back: a single
    // EVALSHA is answered anyway (NOSCRIPT means nothing ran; the gateway
    // loads the script on that node and sends it again).
    let node = cluster.master_of("{s}k");
    assert_eq!(cli(node, &["SCRIPT", "FLUSH"]).trim(), "OK");
    assert_eq!(
        gw.cmd(json!(["EVALSHA", &sha, 1, "{s}k", 5])).await,
        ok(json!(10))
    );
    assert_eq!(cli(node, &["SCRIPT", "EXISTS", &sha]).trim(), "1");
    // In a pipeline the first NOSCRIPT stands (re-sending would reorder it
    // after the commands behind it), and the next pipeline carries the load.
    assert_eq!(cli(node, &["SCRIPT", "FLUSH"]).trim(), "OK");
    let batch = json!([["EVALSHA", &sha, 1, "{s}k", 1], ["GET", "{s}k"]]);
    let (_, body) = gw.pipeline(batch.clone()).await;
    assert!(
        body[0]["error"].as_str().unwrap().starts_with("NOSCRIPT"),
        "{body}"
    );
    assert_eq!(body[1], json!({"result": "10"}));
    let preloads = metric(
        &gw,
        "spindle_gateway_script_preloads_total{result=\"sent\"}",
    )
    .await;
    let (_, body) = gw.pipeline(batch).await;
    assert_eq!(body, json!([{"result": 11}, {"result": "11"}]));
    assert_eq!(
        metric(
            &gw,
            "spindle_gateway_script_preloads_total{result=\"sent\"}"
        )
        .await,
        preloads + 1.0
    );
    // A script the gateway never saw is the client's to load.
    let (status, body) = gw.cmd(json!(["EVALSHA", "0".repeat(40), 0])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().starts_with("NOSCRIPT"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_ask_and_moved_during_a_reshard() {
    let cluster = Cluster::start();
    let gw = gateway(&cluster).await;
    for i in 1..=4 {
        assert_eq!(
            gw.cmd(json!(["SET", format!("{{r}}{i}"), i])).await,
            ok(json!("OK"))
        );
    }
    let slot = cli(cluster.masters()[0], &["CLUSTER", "KEYSLOT", "{r}"])
        .trim()
        .to_owned();
    let src = cluster.master_of("{r}");
    let dst = *cluster.masters().iter().find(|&&m| m != src).unwrap();
    let (src_id, dst_id) = (cluster.id(src), cluster.id(dst));

    // Move the slot as redis-cli --cluster reshard does: mark it, then
    // migrate keys one batch at a time.
    assert_eq!(
        cli(dst, &["CLUSTER", "SETSLOT", &slot, "IMPORTING", &src_id]).trim(),
        "OK"
    );
    assert_eq!(
        cli(src, &["CLUSTER", "SETSLOT", &slot, "MIGRATING", &dst_id]).trim(),
        "OK"
    );
    let dst_port = dst.to_string();
    let migrate = |keys: &[&str]| {
        let mut args = vec!["MIGRATE", "127.0.0.1", &dst_port, "", "0", "5000", "KEYS"];
        args.extend_from_slice(keys);
        assert_eq!(cli(src, &args).trim(), "OK");
    };
    migrate(&["{r}1", "{r}2"]);

    // Mid-migration: moved keys are answered through ASK, the others by the
    // old master, new keys go to the new one; a pipeline keeps its order.
    assert_eq!(gw.cmd(json!(["GET", "{r}1"])).await, ok(json!("1")));
    assert_eq!(gw.cmd(json!(["GET", "{r}3"])).await, ok(json!("3")));
    let (_, body) = gw
        .pipeline(json!([
            ["INCR", "{r}2"],
            ["SET", "{r}new", "n"],
            ["INCR", "{r}3"],
            ["GET", "{r}2"],
            ["APPEND", "{r}new", "+"],
            ["GET", "{r}new"],
        ]))
        .await;
    assert_eq!(
        body,
        json!([{"result": 3}, {"result": "OK"}, {"result": 4}, {"result": "3"}, {"result": 2}, {"result": "n+"}])
    );
    assert!(metric(&gw, "spindle_gateway_cluster_redirects_total{kind=\"ask\"}").await >= 3.0);
    // A multi-key command over keys on both sides gets TRYAGAIN from Redis
    // until the migration ends: a bounded 503 with Retry-After.
    let started = Instant::now();
    let resp = gw
        .post("/")
        .json(&json!(["MGET", "{r}1", "{r}3"]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // Finish: the gateway still maps the slot to the old master, which
    // now answers MOVED; the gateway follows it and learns the new layout.
    migrate(&["{r}3", "{r}4"]);
    for master in cluster.masters() {
        assert_eq!(
            cli(master, &["CLUSTER", "SETSLOT", &slot, "NODE", &dst_id]).trim(),
            "OK"
        );
    }
    let moved = metric(
        &gw,
        "spindle_gateway_cluster_redirects_total{kind=\"moved\"}",
    )
    .await;
    assert_eq!(
        gw.cmd(json!(["MGET", "{r}1", "{r}2", "{r}3", "{r}4", "{r}new"]))
            .await,
        ok(json!(["1", "3", "4", "4", "n+"]))
    );
    assert!(
        metric(
            &gw,
            "spindle_gateway_cluster_redirects_total{kind=\"moved\"}"
        )
        .await
            > moved
    );
    assert_eq!(cli(dst, &["GET", "{r}4"]).trim(), "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovers_from_a_master_crash() {
    let mut cluster = Cluster::start();
    let gw = Arc::new(gateway(&cluster).await);
    let script = "return redis.call('INCR', KEYS[1])";
    let sha = gw.cmd(json!(["SCRIPT", "LOAD", script])).await.1["result"]
        .as_str()
        .unwrap()
        .to_owned();

    let victim = cluster.master_of("{v}");
    let other = *cluster
        .masters()
        .iter()
        .find(|&&m| m != cluster.master_of("{v}"))
        .unwrap();
    let other_key = (0..)
        .map(|i| format!("{{o{i}}}"))
        .find(|k| cluster.master_of(k) == other)
        .unwrap();
    let batch: Vec<Value> = (0..100)
        .map(|i| json!(["SET", format!("{{v}}{i}"), i]))
        .collect();
    let (status, body) = gw.pipeline(Value::Array(batch)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.as_array()
            .unwrap()
            .iter()
            .all(|s| s == &json!({"result": "OK"})),
        "{body}"
    );
    assert_eq!(cli(victim, &["DBSIZE"]).trim(), "100");
    assert_eq!(
        gw.cmd(json!(["SET", &other_key, "still here"])).await,
        ok(json!("OK"))
    );
    // Replicated before the crash: the replica has them.
    cluster.wait_replicated(victim);

    // A writer that keeps going across the crash, recording what was
    // acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let acked: Arc<Mutex<Vec<u64>>> = Default::default();
    let writer = {
        let (gw, stop, acked) = (gw.clone(), stop.clone(), acked.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if gw.cmd(json!(["SET", format!("{{v}}w{n}"), n])).await.0 == StatusCode::OK {
                    acked.lock().unwrap().push(n);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    // When the cluster itself has promoted a replica, as a live node says.
    let slot: u16 = cli(other, &["CLUSTER", "KEYSLOT", "{v}"])
        .trim()
        .parse()
        .unwrap();
    let promoted = std::thread::spawn(move || {
        let started = Instant::now();
        while support::slot_owner(other, slot) == Some(victim)
            && started.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        started.elapsed()
    });
    let crashed = Instant::now();
    cluster.kill(victim);
    // Probe the dead master's slots until they answer again; meanwhile
    // the other masters' slots keep answering.
    let mut errors: Vec<(u128, u16, String)> = Vec::new();
    let mut others_answered = false;
    let recovered = loop {
        let t = Instant::now();
        let resp = gw
            .post("/")
            .json(&json!(["GET", "{v}7"]))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let retry_after = resp.headers().get("retry-after").cloned();
        let body: Value = resp.json().await.unwrap();
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "a probe took {:?}",
            t.elapsed()
        );
        if status == StatusCode::OK {
            assert_eq!(body, json!({"result": "7"}));
            break crashed.elapsed();
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(retry_after.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
        errors.push((
            crashed.elapsed().as_millis(),
            status.as_u16(),
            body["error"].as_str().unwrap_or("").to_owned(),
        ));
        if !others_answered {
            others_answered = gw.cmd(json!(["GET", &other_key])).await == ok(json!("still here"));
        }
        assert!(
            crashed.elapsed() < Duration::from_secs(30),
            "no recovery after 30 s: {errors:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    assert!(
        others_answered || errors.is_empty(),
        "the other masters' slots failed too"
    );

    // Everything replicated before the crash survived it.
    let batch: Vec<Value> = (0..100)
        .map(|i| json!(["GET", format!("{{v}}{i}")]))
        .collect();
    let (_, body) = gw.pipeline(Value::Array(batch)).await;
    for (i, slot) in body.as_array().unwrap().iter().enumerate() {
        assert_eq!(slot, &json!({"result": i.to_string()}), "{{v}}{i}");
    }
    // Acknowledged writes that did not reach the replica before the crash
    // are lost: Redis Cluster replicates asynchronously. Count them.
    let acked = acked.lock().unwrap().clone();
    let batch: Vec<Value> = acked
        .iter()
        .map(|n| json!(["GET", format!("{{v}}w{n}")]))
        .collect();
    let (_, body) = gw.pipeline(Value::Array(batch)).await;
    let lost = body
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["result"].is_null())
        .count();
    // The promoted replica never saw SCRIPT LOAD: the gateway loads it.
    assert_eq!(
        gw.cmd(json!(["EVALSHA", &sha, 1, "{v}n"])).await,
        ok(json!(1))
    );

    let promoted = promoted.join().unwrap();
    let classes: std::collections::BTreeSet<&str> = errors
        .iter()
        .map(|(_, _, e)| e.split(':').next().unwrap_or(""))
        .collect();
    println!(
        "failover: master killed; {} probes failed (all 503 + Retry-After: {:?}), first at {} ms, \
         last at {} ms; the cluster promoted a replica after {} ms (node timeout {} ms), the gateway \
         answered after {} ms; {} of {} acknowledged writes lost",
        errors.len(),
        classes,
        errors.first().map_or(0, |e| e.0),
        errors.last().map_or(0, |e| e.0),
        promoted.as_millis(),
        support::NODE_TIMEOUT_MS,
        recovered.as_millis(),
        lost,
        acked.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follows_a_manual_failover() {
    let cluster = Cluster::start();
    let gw = gateway(&cluster).await;
    assert_eq!(gw.cmd(json!(["SET", "{m}k", "0"])).await, ok(json!("OK")));
    let old = cluster.master_of("{m}k");
    let replica = cluster.replica_of(old);
    assert_eq!(cli(replica, &["CLUSTER", "FAILOVER"]).trim(), "OK");
    // A coordinated failover loses nothing and costs no error: the old
    // master answers MOVED once the replica took over.
    let started = Instant::now();
    let mut n = 0;
    while cluster.master_of("{m}k") != replica {
        n += 1;
        assert_eq!(gw.cmd(json!(["INCR", "{m}k"])).await, ok(json!(n)));
        assert!(started.elapsed() < Duration::from_secs(20), "no failover");
    }
    for _ in 0..5 {
        n += 1;
        assert_eq!(gw.cmd(json!(["INCR", "{m}k"])).await, ok(json!(n)));
    }
    assert_eq!(cli(replica, &["GET", "{m}k"]).trim(), n.to_string());
    assert!(
        metric(
            &gw,
            "spindle_gateway_cluster_redirects_total{kind=\"moved\"}"
        )
        .await
            >= 1.0
    );
}
