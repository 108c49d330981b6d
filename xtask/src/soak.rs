//! `cargo xtask soak`: a long run at a steady rate against the simulator (its own process), with
//! checkpoints and raw records on, sampling the client's resident memory every minute: memory
//! must stay flat (nothing per request is kept).

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

/// Flat: RSS at the end at most this much above the first minute's (the per-second timeline
/// grows by about 0.1 KB a second, 0.4 MB an hour; everything else is fixed-size).
const FLAT_TOLERANCE: f64 = 1.25;

pub(crate) fn soak(args: &[String]) -> Result<()> {
    let mut minutes: u64 = 60;
    let mut rps: u32 = 100;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let value = it.next().with_context(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--minutes" => minutes = value.parse().context("--minutes")?,
            "--rps" => rps = value.parse().context("--rps")?,
            other => bail!("unknown option {other} (--minutes N, --rps R)"),
        }
    }
    if minutes == 0 {
        bail!("--minutes must be at least 1");
    }
    eprintln!("soak: building release (cargo build --release -p loadkit-cli)");
    if !crate::cargo()
        .args(["build", "--release", "--quiet", "-p", "loadkit-cli"])
        .status()?
        .success()
    {
        bail!("release build failed");
    }
    let bin = crate::root().join("target/release/loadkit");
    let mut sim = Command::new(&bin)
        .args(["serve-sim", "--addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start the simulator")?;
    let mut line = String::new();
    BufReader::new(sim.stdout.take().context("simulator stdout")?).read_line(&mut line)?;
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .with_context(|| format!("unexpected simulator output: {line:?}"))?
        .to_owned();
    let out = crate::root().join("target/soak");
    let mut client = Command::new(&bin)
        .args([
            "run",
            "--url",
            &url,
            "--quiet",
            "--force",
            "--rps",
            &rps.to_string(),
        ])
        .args(["--duration", &format!("{minutes}m")])
        .args([
            "--checkpoint-every",
            "10s",
            "--raw",
            "requests.jsonl",
            "--out",
        ])
        .arg(&out)
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start the client")?;
    let start = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    println!("minute  client RSS (KiB)");
    for minute in 1..=minutes {
        let due = start + Duration::from_secs(60 * minute) - Duration::from_millis(500);
        while Instant::now() < due {
            if client.try_wait()?.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let Some(kib) = rss_kib(client.id()) else {
            break;
        };
        println!("{minute:>6}  {kib}");
        samples.push((minute, kib));
    }
    let status = client.wait()?;
    let _ = sim.kill();
    let _ = sim.wait();
    if !status.success() {
        bail!("the client failed ({status})");
    }
    let at = |m: u64| {
        samples
            .iter()
            .find(|(minute, _)| *minute == m)
            .map(|(_, k)| *k)
    };
    let first = at(1).context("no sample at minute 1")?;
    let last = samples.last().map(|(_, k)| *k).unwrap_or(first);
    let mid = at(minutes.div_ceil(2)).unwrap_or(last);
    let flat = last as f64 <= first as f64 * FLAT_TOLERANCE;
    println!(
        "\nsoak: {rps} req/s for {minutes} min · RSS {:.1} MiB at 1 min, {:.1} MiB at {} min, {:.1} MiB at {minutes} min · target ≤ {FLAT_TOLERANCE}× the first minute: {}",
        first as f64 / 1024.0,
        mid as f64 / 1024.0,
        minutes.div_ceil(2),
        last as f64 / 1024.0,
        if flat { "met" } else { "NOT MET" }
    );
    println!("report: {}", out.join("report.json").display());
    Ok(())
}

/// Resident set size of process `pid`, in KiB (VmRSS).
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
