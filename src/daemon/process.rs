//! Identity of this process that survives pid reuse (`pid:start-time`), and whether the
//! process of such an identity is still alive. Linux reads `/proc`; elsewhere an identity is
//! never judged dead and interrupted sends are recovered by age only.

/// `pid:start-time` of this process.
pub fn identity() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or_default())
}

/// Whether the process of `identity` still runs (the same pid with the same start time).
pub fn alive(identity: &str) -> bool {
    let Some((pid, start)) = identity.split_once(':') else {
        return true;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return true;
    };
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    start_time(pid).is_some_and(|s| s == start)
}

/// Field 22 of `/proc/PID/stat` (start time in clock ticks since boot).
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may contain spaces: split after it.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let me = super::identity();
        assert!(super::alive(&me), "{me}");
        let (pid, _) = me.split_once(':').unwrap();
        assert!(!super::alive(&format!("{pid}:1")));
        assert!(!super::alive("4294967294:1"));
    }
}
