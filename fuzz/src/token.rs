//! Target `token`: bearer token parsing and verification (`auth::Authority::check`) in
//! every mode: a JWT key, a static token, both.
//!
//! Input: `[flags: u8][room]\n[token or claims]`. `flags % 3` picks the action; with
//! `flags & 4` the second part is JSON claims, signed here with the server's key (so
//! the claims checks are reached, not only the signature check); else it is the bearer
//! token as sent. A token that passes must be for this room (or `*`) and grant the
//! action.

use jsonwebtoken::{EncodingKey, Header};
use switchboard::auth::{Action, Authority};

const KEY: &str = "fuzz-key-0123456789abcdef0123456789abcdef";
const STATIC: &str = "fuzz-static-token-0123456789abcdef";

/// Run one input.
pub fn run(data: &[u8]) {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let (room, second) = text.split_once('\n').unwrap_or(("room", &text));
    let action = [Action::Publish, Action::Subscribe, Action::Admin][usize::from(flags % 3)];
    let token = if flags & 4 != 0 {
        let Ok(claims) = serde_json::from_str::<serde_json::Value>(second) else {
            return;
        };
        let key = EncodingKey::from_secret(KEY.as_bytes());
        match jsonwebtoken::encode(&Header::default(), &claims, &key) {
            Ok(t) => t,
            Err(_) => return,
        }
    } else {
        second.to_owned()
    };
    let modes = [
        Authority::new(None, Some(KEY)),
        Authority::new(Some(STATIC.into()), None),
        Authority::new(Some(STATIC.into()), Some(KEY)),
    ];
    for auth in &modes {
        let _ = auth.check(None, room, action);
        if let Ok(Some(claims)) = auth.check(Some(&token), room, action) {
            assert!(
                claims.room == "*" || claims.room == room,
                "wrong room passed"
            );
            let g = claims.grants;
            let granted = g.admin
                || match action {
                    Action::Publish => g.publish,
                    Action::Subscribe => g.subscribe,
                    Action::Admin => false,
                };
            assert!(granted, "a token without the grant passed");
        }
    }
}
