//! Placeholder: the notify-worker component is being built (see its issue).

use spin_sdk::redis_component;

#[redis_component]
fn on_message(_message: bytes::Bytes) -> anyhow::Result<()> {
    Ok(())
}
