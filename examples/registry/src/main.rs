//! The `registry` binary: see the crate documentation (`cargo doc -p example-registry`).

use std::path::Path;

use example_registry::app::App;
use example_registry::cli::{load_config, Cli};
use example_registry::common::{default_dead_letters, init_tracing, shutdown_signal};

const CLI: Cli = Cli::new(
    "registry",
    "\
usage: registry [--addr A] [--receiver A]
           serve from memory on A (127.0.0.1:5000), delivering to a receiver on
           127.0.0.1:5055 started beside it, which prints what it receives
       registry serve [--dead-letters PATH] FILE
           serve as configured by a Distribution config file, with Distribution's
           REGISTRY_* environment overrides applied on top (REGISTRY_HTTP_ADDR,
           REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL, ...); events given up on are
           appended as JSON lines to PATH (default: dead-letters.jsonl beside FILE)
       registry -h | --help | -V | --version

environment: RUST_LOG sets the log filter (default info,tower_http=warn)
",
    &["--addr", "--receiver", "--dead-letters"],
);

#[tokio::main]
async fn main() {
    let args = CLI.parse();
    init_tracing("info,tower_http=warn");

    let app = match args.positional.as_slice() {
        [] if args.flags.iter().all(|(f, _)| f != "--dead-letters") => {
            let mut addr = "127.0.0.1:5000".to_owned();
            let mut receiver = "127.0.0.1:5055".to_owned();
            for (flag, value) in args.flags {
                match flag.as_str() {
                    "--addr" => addr = value,
                    _ => receiver = value,
                }
            }
            App::local(&addr, &receiver)
                .await
                .map_err(|e| format!("registry on {addr}, receiver on {receiver}: {e}"))
        }
        [] => CLI.fail("--dead-letters goes with serve"),
        [cmd, file] if cmd == "serve" && args.flags.iter().all(|(f, _)| f == "--dead-letters") => {
            let path = Path::new(file);
            let dead_letters = match args.flags.last() {
                Some((_, to)) => to.into(),
                None => default_dead_letters(path),
            };
            load_config(path)
                .map_err(|e| e.into())
                .and_then(|config| App::from_config(config, &dead_letters))
                .map_err(|e| format!("{file}: {e}"))
        }
        [cmd, ..] if cmd == "serve" => CLI.fail("serve takes one FILE, and no flag but --dead-letters"),
        [other, ..] => CLI.fail(&format!("unknown command {other}")),
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
