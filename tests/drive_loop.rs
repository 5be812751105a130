//! The room's and the shard's tasks in production and the simulation harness drive the
//! sans-IO core with the same loops, `switchboard::room::drive` and
//! `switchboard::shard::drive`, so an output added to `RoomOutput` or `ShardOutput`
//! reaches both (the loops match every variant; each sink must implement every
//! method). This test keeps it that way: a driver that polls the core by hand, or
//! stops calling the shared loop, fails here.

use std::path::Path;

fn source(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// Lines of `text` that are code, not comments.
fn code(text: &str) -> String {
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The core's outputs as they were before `poll_output`: a driver calling one of these
/// would be bypassing the drive loop (they no longer exist, so this also guards against
/// their return).
const BY_HAND: [&str; 6] = [
    "poll_output(",
    "poll_transmit(",
    "take_events(",
    "take_bindings(",
    "take_reports(",
    "poll_shard_delivery(",
];

#[test]
fn the_runtime_and_the_simulation_drive_rooms_and_shards_with_the_same_loops() {
    let drivers = [
        ("src/runtime/room_task.rs", "drive(&mut room, &mut io)"),
        ("src/runtime/shard_task.rs", "drive(&mut shard, &mut io)"),
        ("tests/sim/shards.rs", "room::drive(&mut self.room"),
        ("tests/sim/shards.rs", "shard::drive(&mut self.shards[i]"),
    ];
    for (path, call) in drivers {
        let text = code(&source(path));
        assert!(text.contains(call), "{path} no longer calls `{call}`");
        for by_hand in BY_HAND {
            assert!(
                !text.contains(by_hand),
                "{path} polls the core by hand (`{by_hand}`) instead of the shared drive loop"
            );
        }
    }
    let runtime = code(&source("src/runtime/room_task.rs"));
    assert!(
        runtime.contains("use crate::room::{drive,"),
        "the room task's `drive` is not the room's"
    );
    let shard_task = code(&source("src/runtime/shard_task.rs"));
    assert!(
        shard_task.contains("use crate::shard::{drive,"),
        "the shard task's `drive` is not the shard's"
    );
}
