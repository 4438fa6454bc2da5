//! Property-based fuzzing of the RESP2 decoder (`redis::resp`), which the
//! guest runs on every reply over wasi:sockets, against the oracle's
//! encoder and Spin's flattening rule.
//!
//! Cases per property: `PROPTEST_CASES` (default 256).
//! Deep run: `PROPTEST_CASES=100000 cargo test --profile native -p spindle --test fuzz_resp`.

mod oracles;

use oracles::Resp;
use proptest::prelude::*;
use spindle::redis::resp::decode;
use spindle::redis::{Error, Reply};

fn config() -> ProptestConfig {
    ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
}

fn resp() -> impl Strategy<Value = Resp> {
    let leaf = prop_oneof![
        "[ -~]{0,12}".prop_map(|s| Resp::Simple(s.into_bytes())),
        any::<i64>().prop_map(Resp::Int),
        prop::option::of(prop::collection::vec(any::<u8>(), 0..40)).prop_map(Resp::Bulk),
        Just(Resp::Array(None)),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| prop::option::of(prop::collection::vec(inner, 0..6)).prop_map(Resp::Array))
}

proptest! {
    #![proptest_config(config())]

    /// Random bytes: a reply, "more", or a protocol error; never a panic,
    /// and never more bytes used than there are.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Some((_, used))) = decode(&bytes) {
            prop_assert!(used <= bytes.len());
        }
    }

    /// Whatever Redis sends decodes to Spin's flattening of it, using every
    /// byte; every shorter prefix asks for more.
    #[test]
    fn replies_decode_flattened(r in resp(), tail in prop::collection::vec(any::<u8>(), 0..8)) {
        let mut wire = Vec::new();
        r.encode(&mut wire);
        let mut want = Vec::new();
        r.flatten(&mut want);
        let mut with_tail = wire.clone();
        with_tail.extend_from_slice(&tail);
        prop_assert_eq!(decode(&with_tail), Ok(Some((Ok(Reply(want)), wire.len()))));
        for cut in 0..wire.len() {
            prop_assert_eq!(decode(&wire[..cut]), Ok(None), "prefix of {} bytes", cut);
        }
    }

    /// An error reply is that error, not a failure of the stream.
    #[test]
    fn error_replies(msg in "[A-Z]{1,8} [ -~]{0,30}") {
        let wire = format!("-{msg}\r\n");
        prop_assert_eq!(decode(wire.as_bytes()), Ok(Some((Err(Error::Server(msg)), wire.len()))));
    }
}
