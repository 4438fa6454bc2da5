//! TEST-ONLY: plain cache-aside (`users_cache_mode = naive`), which has the
//! stale-fill race the leases prevent; it exists so a test can show that race.

use super::{Cache, Degraded, Entry, Fetched, Outcome, Source};
use crate::env::Sleep;
use crate::redis::{self, Arg, Cmd, Link};

impl<L: Link, S: Sleep> Cache<'_, L, S> {
    pub(super) async fn get_naive<Src: Source>(&self, keys: &[String], src: &Src) -> Result<(Vec<Fetched>, Option<Degraded>), Src::Error> {
        let names: Vec<Arg> = keys.iter().map(|k| self.keys.value(k).into()).collect();
        let reply = match self.link.exec(&Cmd::new("MGET").args_from(names)).await {
            Ok(r) if r.values().len() == keys.len() => r,
            Ok(_) => return self.bypass(keys, src, redis::Error::Protocol("MGET".into())).await,
            Err(e) => return self.bypass(keys, src, e).await,
        };
        let mut out: Vec<Option<Fetched>> = vec![None; keys.len()];
        let mut missing = Vec::new();
        for (i, v) in reply.values().iter().enumerate() {
            match v.as_bytes().and_then(Entry::decode) {
                Some(e) => out[i] = Some(Fetched { value: e.value, outcome: Outcome::Hit }),
                None => missing.push(i),
            }
        }
        if !missing.is_empty() {
            let names: Vec<String> = missing.iter().map(|&i| keys[i].clone()).collect();
            let started = self.mono();
            let loaded = src.load(&names).await?;
            let delta = self.mono().saturating_sub(started).max(1);
            if self.cfg.fill_delay_ms > 0 {
                self.sleep.sleep_ms(self.cfg.fill_delay_ms).await;
            }
            for (&i, value) in missing.iter().zip(loaded) {
                if let Some(px) = self.entry_px(value.is_some()) {
                    let entry = Entry { epoch: 0, delta_ms: delta, value: value.clone() }.encode();
                    let _ = self.link.exec(&Cmd::new("SET").arg(self.keys.value(&keys[i])).arg(entry).arg("PX").arg(px)).await;
                }
                out[i] = Some(Fetched { value, outcome: Outcome::Miss });
            }
        }
        let fetched = out.into_iter().map(|f| f.unwrap_or(Fetched { value: None, outcome: Outcome::Bypass })).collect();
        Ok((fetched, None))
    }
}
