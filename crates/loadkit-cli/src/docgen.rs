//! `loadkit completions SHELL` (clap_complete) and the hidden `loadkit man --out DIR`
//! (clap_mangen) behind `cargo xtask man`: both from the same clap command the parser uses, so
//! the protocols' own flags are in them.

use std::path::Path;

use crate::{exit, Fatal};

pub(crate) fn completions(shell: clap_complete::Shell) -> Result<u8, Fatal> {
    use std::io::Write as _;
    let mut command = crate::args::command();
    // Into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "loadkit", &mut script);
    match std::io::stdout().write_all(&script) {
        Ok(()) => Ok(exit::OK),
        // `| head` closed the pipe: what was wanted was printed.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(exit::OK),
        Err(e) => Err(Fatal::new(
            exit::USAGE,
            anyhow::anyhow!("cannot write: {e}"),
        )),
    }
}

pub(crate) fn man(out: &Path) -> Result<u8, Fatal> {
    let fail = |e: std::io::Error| {
        Fatal::new(
            exit::USAGE,
            anyhow::anyhow!("cannot write man pages to {}: {e}", out.display()),
        )
    };
    std::fs::create_dir_all(out).map_err(fail)?;
    let command = crate::args::command();
    let mut pages = vec![("loadkit".to_owned(), command.clone())];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("loadkit-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let mut bytes = Vec::new();
        clap_mangen::Man::new(page)
            .render(&mut bytes)
            .map_err(fail)?;
        let path = out.join(format!("{name}.1"));
        std::fs::write(&path, bytes).map_err(fail)?;
        println!("{}", path.display());
    }
    Ok(exit::OK)
}
