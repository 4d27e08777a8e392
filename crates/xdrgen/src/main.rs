//! `xdrgen SPEC.x LIMITS OUT.rs`: writes the Rust module for SPEC.x (or, with
//! `--check`, fails if OUT.rs differs from what would be written).
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check, files) = match args.first().map(String::as_str) {
        Some("--check") => (true, &args[1..]),
        _ => (false, &args[..]),
    };
    let [spec, limits, out] = files else {
        eprintln!("usage: xdrgen [--check] SPEC.x LIMITS OUT.rs");
        return ExitCode::from(2);
    };
    let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
    let result = (|| -> Result<bool, String> {
        let source = format!("{spec} and {limits}");
        let code = xdrgen::generate(&read(spec)?, &read(limits)?, &source)
            .map_err(|e| format!("{spec}: {e}"))?;
        if check {
            return Ok(read(out).ok().as_deref() == Some(code.as_str()));
        }
        std::fs::write(out, code).map_err(|e| format!("{out}: {e}"))?;
        Ok(true)
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("{out} is not what xdrgen generates from {spec}; regenerate it");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("xdrgen: {e}");
            ExitCode::FAILURE
        }
    }
}
