//! The `registry` binary: see the crate documentation (`cargo doc -p example-registry`).

use std::path::Path;

use example_registry::app::App;
use example_registry::common::{init_tracing, shutdown_signal};

fn usage() -> ! {
    eprintln!("usage: registry [--addr A] [--receiver A]");
    eprintln!("           serve from memory on A (127.0.0.1:5000), delivering to a receiver on");
    eprintln!("           127.0.0.1:5055 started beside it, which prints what it receives");
    eprintln!("       registry serve FILE");
    eprintln!("           serve as configured by a Distribution config file");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    init_tracing("info,tower_http=warn");

    let args: Vec<String> = std::env::args().skip(1).collect();
    let app = match args.first().map(String::as_str) {
        None | Some("--addr" | "--receiver") => {
            let mut addr = "127.0.0.1:5000".to_owned();
            let mut receiver = "127.0.0.1:5055".to_owned();
            let mut rest = args.iter();
            while let Some(flag) = rest.next() {
                match (flag.as_str(), rest.next()) {
                    ("--addr", Some(v)) => addr = v.clone(),
                    ("--receiver", Some(v)) => receiver = v.clone(),
                    _ => usage(),
                }
            }
            App::local(&addr, &receiver)
                .await
                .map_err(|e| format!("registry on {addr}, receiver on {receiver}: {e}"))
        }
        Some("serve") if args.len() == 2 => {
            App::from_config(Path::new(&args[1])).map_err(|e| format!("{}: {e}", args[1]))
        }
        _ => usage(),
    };
    let result = match app {
        Ok(app) => app.run(shutdown_signal()).await.map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("{e}");
        std::process::exit(1);
    }
}
