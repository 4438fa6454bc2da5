//! How the app ends when its Redis trigger cannot run: as `spin up` ends,
//! with an error and a non-zero exit status, whether the trigger's Redis is
//! unreachable at start-up or goes away later. Both messages checked here
//! are Spin's own words, which the runner repeats.
//!
//! These tests need the host process itself (its exit status and output),
//! which the shared harness keeps to itself, so they start it here:
//! `spindle-runner`, or Spin when `SPINDLE_HOST=spin` (`SPIN_BIN`, then
//! `spin` on PATH, then `../shared/bin/spin`).

use spindle_e2e::*;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The testbed app with its own output files, started directly.
struct App {
    child: Child,
    dir: PathBuf,
}

impl App {
    fn start(redis_url: &str, trigger_url: &str) -> App {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("spindle-exits-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (mut cmd, is_spin) = host_command();
        cmd.arg("up").arg("-f").arg(fixture("testbed.toml")).arg("--listen").arg(format!("127.0.0.1:{port}"));
        if is_spin {
            cmd.arg("--state-dir").arg(dir.join("state"));
        }
        let redis_host = redis_url.trim_start_matches("redis://");
        for (k, v) in [("redis_host", redis_host), ("redis_trigger_url", trigger_url), ("secret_thing", "s3cret")] {
            cmd.arg("--variable").arg(format!("{k}={v}"));
        }
        let out = std::fs::File::create(dir.join("stdout")).unwrap();
        let err = std::fs::File::create(dir.join("stderr")).unwrap();
        let child = cmd.stdin(Stdio::null()).stdout(out).stderr(err).spawn().unwrap();
        App { child, dir }
    }

    /// Waits (bounded) for the process to end.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "still running after {within:?}; stderr: {}", self.output("stderr"));
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The host to run, and whether it is Spin.
fn host_command() -> (Command, bool) {
    if std::env::var("SPINDLE_HOST").as_deref() == Ok("spin") {
        let spin = spindle_e2e::spin_bin().expect("SPINDLE_HOST=spin but no Spin CLI (SPIN_BIN, spin on PATH, ../shared/bin/spin)");
        (Command::new(spin), true)
    } else {
        (Command::new(bin("spindle-runner")), false)
    }
}

#[test]
fn an_unreachable_trigger_redis_at_start_up_stops_the_app() {
    let redis = Redis::start();
    let dead = format!("127.0.0.1:{}", free_port());
    let mut app = App::start(&redis.url(), &format!("redis://{dead}"));
    let status = app.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{status}");
    let stderr = app.output("stderr");
    assert!(stderr.contains(&format!("Redis trigger failed to connect to {dead}")), "{stderr}");
}

#[test]
fn losing_the_trigger_redis_later_stops_the_app() {
    let mut redis = Redis::start();
    let mut app = App::start(&redis.url(), &redis.url());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut conn = redis.client().get_connection().unwrap();
    loop {
        let numsub: (String, i64) = redis::cmd("PUBSUB").arg("NUMSUB").arg("testbed-events").query(&mut conn).unwrap();
        if numsub.1 == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the trigger never subscribed; stderr: {}", app.output("stderr"));
        std::thread::sleep(Duration::from_millis(50));
    }
    redis.stop();
    let status = app.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{status}");
    let (stdout, stderr) = (app.output("stdout"), app.output("stderr"));
    assert!(stdout.contains("A trigger exited unexpectedly. Terminating."), "{stdout}");
    assert!(stderr.contains(&format!("disconnected from 127.0.0.1:{}", redis.port)), "{stderr}");
}
