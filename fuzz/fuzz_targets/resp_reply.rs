//! The RESP2 decoder the guest runs over wasi:sockets. Mode 0: arbitrary
//! bytes never panic and never use more bytes than given. Mode 1: a reply
//! built from the bytes, encoded as Redis does, decodes to Spin's
//! flattening of it, and every shorter prefix asks for more.
#![no_main]
use libfuzzer_sys::fuzz_target;
use spindle::redis::resp::decode;
use spindle::redis::Reply;
use spindle_fuzz::{Bytes, Resp};

fn tree(d: &mut Bytes, depth: u32) -> Resp {
    match d.byte() % if depth > 4 { 4 } else { 5 } {
        0 => Resp::Simple(d.str(12).bytes().filter(|b| *b != b'\r' && *b != b'\n').collect()),
        1 => Resp::Int(i64::from(d.byte()) - 128),
        2 => Resp::Bulk((d.byte() % 4 != 0).then(|| {
            let n = d.byte() as usize % 40;
            d.take(n).to_vec()
        })),
        3 => Resp::Array(None),
        _ => {
            let n = d.byte() as usize % 5;
            Resp::Array(Some((0..n).map(|_| tree(d, depth + 1)).collect()))
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut d = Bytes(data);
    if d.byte() % 2 == 0 {
        if let Ok(Some((_, used))) = decode(d.0) {
            assert!(used <= d.0.len());
        }
        return;
    }
    let r = tree(&mut d, 0);
    let mut wire = Vec::new();
    r.encode(&mut wire);
    let mut want = Vec::new();
    r.flatten(&mut want);
    assert_eq!(decode(&wire), Ok(Some((Ok(Reply(want)), wire.len()))));
    for cut in 0..wire.len() {
        assert_eq!(decode(&wire[..cut]), Ok(None));
    }
});
