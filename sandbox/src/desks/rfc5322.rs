//! Just enough RFC 5322 and SMTP for a simulated desk: read a few headers of a probe, write a
//! reply, hand it to the loopback relay. Not a mail library: the messages it reads are
//! deskprobe's own probes and the relay is ours.

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The header block of `raw`, unfolded, as (lowercased name, value) pairs.
pub fn headers(raw: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(raw);
    let head = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .split("\n\n")
        .next()
        .unwrap_or("");
    let mut out: Vec<(String, String)> = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = out.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((n, v)) = line.split_once(':') {
            out.push((n.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    out
}

/// The first header called `name` (lowercase).
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// The bare address of a `From`/`Reply-To` value: `Lin <a@b>` → `a@b`.
pub fn address(value: &str) -> String {
    match (value.rfind('<'), value.rfind('>')) {
        (Some(a), Some(b)) if a < b => value[a + 1..b].trim().to_owned(),
        _ => value.trim().to_owned(),
    }
}

/// An RFC 5322 date in UTC: `Mon, 02 Nov 2026 03:00:00 +0000`.
pub fn date(t: SystemTime) -> String {
    let s = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let days = s.div_euclid(86_400);
    let rem = s.rem_euclid(86_400);
    // Civil date from days since the epoch (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    const WD: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MON: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        WD[days.rem_euclid(7) as usize],
        d,
        MON[(m - 1) as usize],
        y,
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

async fn reply(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, String)> {
    let mut all = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("SMTP server closed the connection"));
        }
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            return Ok((code, all));
        }
    }
}

async fn command(reader: &mut BufReader<TcpStream>, line: &str, want: u16) -> std::io::Result<()> {
    reader.get_mut().write_all(line.as_bytes()).await?;
    reader.get_mut().write_all(b"\r\n").await?;
    let (code, text) = reply(reader).await?;
    if code != want {
        return Err(std::io::Error::other(format!(
            "SMTP `{line}` answered {}",
            text.trim()
        )));
    }
    Ok(())
}

/// Sends `message` (CRLF lines) from `from` to `to` through the plaintext SMTP listener on
/// 127.0.0.1:`port` (the sandbox relay takes mail without AUTH on loopback).
pub async fn send(port: u16, from: &str, to: &str, message: &str) -> std::io::Result<()> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true).ok();
    let mut reader = BufReader::new(tcp);
    let (code, text) = reply(&mut reader).await?;
    if code != 220 {
        return Err(std::io::Error::other(format!(
            "SMTP greeting {}",
            text.trim()
        )));
    }
    command(&mut reader, "EHLO simulated-desk.localhost", 250).await?;
    command(&mut reader, &format!("MAIL FROM:<{from}>"), 250).await?;
    command(&mut reader, &format!("RCPT TO:<{to}>"), 250).await?;
    command(&mut reader, "DATA", 354).await?;
    let mut data = String::with_capacity(message.len() + 8);
    for line in message.split("\r\n") {
        if line.starts_with('.') {
            data.push('.');
        }
        data.push_str(line);
        data.push_str("\r\n");
    }
    data.push_str(".\r\n");
    reader.get_mut().write_all(data.as_bytes()).await?;
    let (code, text) = reply(&mut reader).await?;
    if code != 250 {
        return Err(std::io::Error::other(format!(
            "SMTP DATA answered {}",
            text.trim()
        )));
    }
    let _ = command(&mut reader, "QUIT", 221).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_and_headers() {
        let t = UNIX_EPOCH + Duration::from_secs(1_793_588_400);
        assert_eq!(date(t), "Mon, 02 Nov 2026 03:00:00 +0000");
        assert_eq!(date(UNIX_EPOCH), "Thu, 01 Jan 1970 00:00:00 +0000");
        let h =
            headers(b"From: Lin <probe+x@localhost>\r\nReferences: <a@b>\r\n <c@d>\r\n\r\nbody");
        assert_eq!(address(header(&h, "from").unwrap()), "probe+x@localhost");
        assert_eq!(header(&h, "references"), Some("<a@b> <c@d>"));
    }
}
