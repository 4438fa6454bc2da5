//! Counters and a latency histogram, rendered in the Prometheus text format
//! for `GET /metrics`.
//!
//! Every label takes a fixed, small set of values (routes, status codes,
//! error classes), so the series are known up front and live in arrays of
//! atomics: recording is lock-free and costs a few nanoseconds. Nothing here
//! carries keys, values, tokens or Redis addresses.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The route a request took, as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Command,
    Path,
    Pipeline,
    MultiExec,
    Healthz,
    Metrics,
    Unknown,
}

impl Route {
    const ALL: [Route; 7] = [
        Route::Command,
        Route::Path,
        Route::Pipeline,
        Route::MultiExec,
        Route::Healthz,
        Route::Metrics,
        Route::Unknown,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Route::Command => "command",
            Route::Path => "path",
            Route::Pipeline => "pipeline",
            Route::MultiExec => "multi-exec",
            Route::Healthz => "healthz",
            Route::Metrics => "metrics",
            Route::Unknown => "unknown",
        }
    }
}

/// Why a request (or one command of a pipeline) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// No token, or an unknown one (401).
    Unauthorized,
    /// A valid token whose scope does not allow the command (403).
    Forbidden,
    /// Bad JSON, bad arguments, a refused command, a bad path (400/404/405/408/413).
    BadRequest,
    /// Redis answered with an error reply.
    RedisError,
    /// Refused by admission control: queue full or waited too long (503).
    Saturated,
    /// Redis could not be reached (503).
    Unavailable,
    /// Redis did not answer in time (503).
    Timeout,
    /// A cluster in transition: a slot being migrated, CLUSTERDOWN, a
    /// failover (503).
    ClusterBusy,
}

impl ErrorClass {
    const ALL: [ErrorClass; 8] = [
        ErrorClass::Unauthorized,
        ErrorClass::Forbidden,
        ErrorClass::BadRequest,
        ErrorClass::RedisError,
        ErrorClass::Saturated,
        ErrorClass::Unavailable,
        ErrorClass::Timeout,
        ErrorClass::ClusterBusy,
    ];

    fn label(self) -> &'static str {
        match self {
            ErrorClass::Unauthorized => "unauthorized",
            ErrorClass::Forbidden => "forbidden",
            ErrorClass::BadRequest => "bad_request",
            ErrorClass::RedisError => "redis_error",
            ErrorClass::Saturated => "saturated",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Timeout => "timeout",
            ErrorClass::ClusterBusy => "cluster_busy",
        }
    }
}

/// The status codes the gateway answers with; anything else counts as
/// "other" (there is none today).
const STATUSES: [u16; 12] = [200, 400, 401, 403, 404, 405, 408, 413, 500, 502, 503, 0];

fn status_index(status: u16) -> usize {
    STATUSES
        .iter()
        .position(|&s| s == status)
        .unwrap_or(STATUSES.len() - 1)
}

/// Upper bounds of the latency buckets, in seconds: 100 µs to 10 s.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Default)]
struct Histogram {
    /// Per bucket (not cumulative), plus one for +Inf.
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|&b| secs <= b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

/// Counters for events below the HTTP layer.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Event {
    /// A MOVED reply followed.
    Moved,
    /// An ASK reply followed.
    Ask,
    RefreshOk,
    RefreshFailed,
    /// A SCRIPT LOAD the gateway sent before an EVALSHA.
    ScriptPreload,
    TokenReloadOk,
    TokenReloadFailed,
}

const EVENTS: usize = 7;

#[derive(Default)]
pub(crate) struct Metrics {
    requests: [[AtomicU64; STATUSES.len()]; Route::ALL.len()],
    latency: [Histogram; Route::ALL.len()],
    errors: [AtomicU64; ErrorClass::ALL.len()],
    events: [AtomicU64; EVENTS],
}

/// Point-in-time values the renderer asks for.
pub(crate) struct Gauges {
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub queued: usize,
    pub max_queue: usize,
    /// Tokens by scope: read-write, read-only, metrics.
    pub tokens: [usize; 3],
    /// Masters and slots with a master, on a cluster.
    pub cluster: Option<(usize, usize)>,
}

impl Metrics {
    pub(crate) fn request(&self, route: Route, status: u16, elapsed: Duration) {
        let r = route as usize;
        self.requests[r][status_index(status)].fetch_add(1, Ordering::Relaxed);
        self.latency[r].observe(elapsed);
    }

    pub(crate) fn error(&self, class: ErrorClass) {
        self.errors[class as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn event(&self, event: Event) {
        self.events[event as usize].fetch_add(1, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn event_count(&self, event: Event) -> u64 {
        self.events[event as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn render(&self, g: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let head = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP spindle_gateway_{name} {help}");
            let _ = writeln!(out, "# TYPE spindle_gateway_{name} {kind}");
        };

        head(
            &mut out,
            "requests_total",
            "counter",
            "HTTP requests answered, by route and status.",
        );
        for route in Route::ALL {
            for (i, status) in STATUSES.iter().enumerate() {
                let n = load(&self.requests[route as usize][i]);
                if n > 0 {
                    let status = if *status == 0 {
                        "other".to_owned()
                    } else {
                        status.to_string()
                    };
                    let _ = writeln!(
                        out,
                        "spindle_gateway_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
                        route.label()
                    );
                }
            }
        }

        head(
            &mut out,
            "request_duration_seconds",
            "histogram",
            "Time from request to response, by route.",
        );
        for route in Route::ALL {
            let h = &self.latency[route as usize];
            let counts: Vec<u64> = h.counts.iter().map(load).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let label = route.label();
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(&counts) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "spindle_gateway_request_duration_seconds_bucket{{route=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "spindle_gateway_request_duration_seconds_bucket{{route=\"{label}\",le=\"+Inf\"}} {total}"
            );
            let sum = load(&h.sum_nanos) as f64 / 1e9;
            let _ = writeln!(
                out,
                "spindle_gateway_request_duration_seconds_sum{{route=\"{label}\"}} {sum}"
            );
            let _ = writeln!(
                out,
                "spindle_gateway_request_duration_seconds_count{{route=\"{label}\"}} {total}"
            );
        }

        head(
            &mut out,
            "errors_total",
            "counter",
            "Failed requests and pipeline commands, by class.",
        );
        for class in ErrorClass::ALL {
            let _ = writeln!(
                out,
                "spindle_gateway_errors_total{{class=\"{}\"}} {}",
                class.label(),
                load(&self.errors[class as usize])
            );
        }

        let gauges: [(&str, &str, usize); 4] = [
            ("in_flight", "Requests talking to Redis now.", g.in_flight),
            (
                "in_flight_limit",
                "Most requests that may talk to Redis at once (--max-in-flight).",
                g.max_in_flight,
            ),
            ("queued", "Requests waiting for a turn now.", g.queued),
            (
                "queue_limit",
                "Most requests that may wait (--max-queue).",
                g.max_queue,
            ),
        ];
        for (name, help, value) in gauges {
            head(&mut out, name, "gauge", help);
            let _ = writeln!(out, "spindle_gateway_{name} {value}");
        }

        head(
            &mut out,
            "tokens",
            "gauge",
            "Tokens accepted now, by scope.",
        );
        for (scope, n) in ["read-write", "read-only", "metrics"].iter().zip(g.tokens) {
            let _ = writeln!(out, "spindle_gateway_tokens{{scope=\"{scope}\"}} {n}");
        }

        /// A counter family: name, help, label key, and (label value, event) pairs.
        type Family = (
            &'static str,
            &'static str,
            &'static str,
            &'static [(&'static str, Event)],
        );
        let counters: [Family; 4] = [
            (
                "cluster_redirects_total",
                "MOVED and ASK replies followed.",
                "kind",
                &[("moved", Event::Moved), ("ask", Event::Ask)],
            ),
            (
                "topology_refreshes_total",
                "Reads of the cluster's slot map.",
                "result",
                &[("ok", Event::RefreshOk), ("failed", Event::RefreshFailed)],
            ),
            (
                "script_preloads_total",
                "SCRIPT LOADs sent ahead of an EVALSHA to a server without the script.",
                "result",
                &[("sent", Event::ScriptPreload)],
            ),
            (
                "token_reloads_total",
                "Reloads of the token file.",
                "result",
                &[
                    ("ok", Event::TokenReloadOk),
                    ("failed", Event::TokenReloadFailed),
                ],
            ),
        ];
        for (name, help, key, series) in counters {
            head(&mut out, name, "counter", help);
            for (label, event) in series {
                let _ = writeln!(
                    out,
                    "spindle_gateway_{name}{{{key}=\"{label}\"}} {}",
                    load(&self.events[*event as usize])
                );
            }
        }

        if let Some((masters, covered)) = g.cluster {
            head(
                &mut out,
                "cluster_masters",
                "gauge",
                "Masters in the cluster's slot map.",
            );
            let _ = writeln!(out, "spindle_gateway_cluster_masters {masters}");
            head(
                &mut out,
                "cluster_slots_covered",
                "gauge",
                "Hash slots with a master (16384 when whole).",
            );
            let _ = writeln!(out, "spindle_gateway_cluster_slots_covered {covered}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.request(Route::Command, 200, Duration::from_micros(300));
        m.request(Route::Command, 200, Duration::from_millis(3));
        m.request(Route::Pipeline, 503, Duration::from_secs(20));
        m.error(ErrorClass::Saturated);
        m.event(Event::Moved);
        assert_eq!(m.event_count(Event::Moved), 1);
        let text = m.render(&Gauges {
            in_flight: 1,
            max_in_flight: 8,
            queued: 0,
            max_queue: 4,
            tokens: [1, 2, 0],
            cluster: Some((3, 16384)),
        });
        for line in [
            "spindle_gateway_requests_total{route=\"command\",status=\"200\"} 2",
            "spindle_gateway_requests_total{route=\"pipeline\",status=\"503\"} 1",
            "spindle_gateway_request_duration_seconds_bucket{route=\"command\",le=\"0.00025\"} 0",
            "spindle_gateway_request_duration_seconds_bucket{route=\"command\",le=\"0.0005\"} 1",
            "spindle_gateway_request_duration_seconds_bucket{route=\"command\",le=\"0.005\"} 2",
            "spindle_gateway_request_duration_seconds_bucket{route=\"pipeline\",le=\"10\"} 0",
            "spindle_gateway_request_duration_seconds_bucket{route=\"pipeline\",le=\"+Inf\"} 1",
            "spindle_gateway_request_duration_seconds_count{route=\"command\"} 2",
            "spindle_gateway_errors_total{class=\"saturated\"} 1",
            "spindle_gateway_errors_total{class=\"timeout\"} 0",
            "spindle_gateway_in_flight_limit 8",
            "spindle_gateway_tokens{scope=\"read-only\"} 2",
            "spindle_gateway_cluster_redirects_total{kind=\"moved\"} 1",
            "spindle_gateway_cluster_slots_covered 16384",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
        assert!(
            !text.contains("route=\"healthz\""),
            "unused routes are left out"
        );
    }
}
