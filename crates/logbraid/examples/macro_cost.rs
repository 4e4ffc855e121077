use std::arch::x86_64::_rdtsc;
fn main() {
    let dir = tempfile::tempdir().unwrap();
    let _g = logbraid::Builder::new()
        .level("info")
        .file(logbraid::sink::RollingFile::builder(
            dir.path().join("x.log"),
        ))
        .unwrap()
        .init()
        .unwrap();
    let which = std::env::args().nth(1).unwrap_or_default();
    if which == "tp" || which == "tplog" {
        let t = std::time::Instant::now();
        for id in 0..4_000_000u64 {
            if which == "tp" {
                logbraid::info!("request {} served in {} ms", id, id % 1000);
            } else {
                log::info!("request {} served in {} ms", id, id % 1000);
            }
        }
        drop(_g);
        println!("{which}: {:.2} M lines/s", 4.0 / t.elapsed().as_secs_f64());
        return;
    }
    if which == "serial" {
        use std::arch::x86_64::{__rdtscp, _mm_lfence};
        let t = || unsafe {
            _mm_lfence();
            let t = _rdtsc();
            _mm_lfence();
            t
        };
        let u = || unsafe {
            let mut a = 0;
            let t = __rdtscp(&mut a);
            _mm_lfence();
            t
        };
        let mut o: Vec<u64> = (0..100000)
            .map(|_| {
                let a = t();
                let b = u();
                b - a
            })
            .collect();
        o.sort();
        let over = o[o.len() / 2];
        for kind in ["macro", "log", "macro", "log"] {
            let mut v = Vec::new();
            for round in 0..5000u64 {
                for i in 0..20u64 {
                    let id = round * 20 + i;
                    let a = t();
                    if kind == "log" {
                        log::info!("request {} served in {} ms", id, 3);
                    } else {
                        logbraid::info!("request {} served in {} ms", id, 3);
                    }
                    let b = u();
                    v.push((b - a).saturating_sub(over));
                }
                let until = std::time::Instant::now() + std::time::Duration::from_micros(100);
                while std::time::Instant::now() < until {}
            }
            v.sort();
            println!(
                "{kind}: p50 {:.1} ns p90 {:.1} ns",
                v[v.len() / 2] as f64 / 2.6,
                v[v.len() * 9 / 10] as f64 / 2.6
            );
        }
        return;
    }
    let mut per = Vec::new();
    for round in 0..std::env::var("ROUNDS")
        .map(|r| r.parse().unwrap())
        .unwrap_or(20_000u64)
    {
        let t0 = unsafe { _rdtsc() };
        for i in 0..20u64 {
            let id = round * 20 + i;
            match which.as_str() {
                "log" => log::info!("request {} served in {} ms", id, 3),
                "off" => logbraid::debug!("request {} served in {} ms", id, 3),
                _ => logbraid::info!("request {} served in {} ms", id, 3),
            }
        }
        let t1 = unsafe { _rdtsc() };
        per.push((t1 - t0) as f64 / 20.0 / 2.6);
        let until = std::time::Instant::now()
            + std::time::Duration::from_micros(
                std::env::var("SPIN")
                    .map(|r| r.parse().unwrap())
                    .unwrap_or(100),
            );
        if std::env::var_os("SLEEP").is_some() {
            std::thread::sleep(std::time::Duration::from_micros(100));
        } else {
            while std::time::Instant::now() < until {}
        }
    }
    per.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "{which}: min {:.1} p10 {:.1} p50 {:.1} ns/call",
        per[0],
        per[per.len() / 10],
        per[per.len() / 2]
    );
}
