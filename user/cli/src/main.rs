//! `sagrada`: the command-line face of the emulated machine.

#![forbid(unsafe_code)]

mod bench;
mod bench_cc;
mod bench_compute;
mod bench_dma;
mod bench_rdma;
mod cc_cmd;
mod demo;
mod demo_compute;
mod demo_p2p;
mod demo_rdma;
mod info;
mod isa_cmd;
mod rdma_pair;
mod run_cmd;
mod topo;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use sagrada_hw_fabric::TopologyConfig;

#[derive(Parser, Debug)]
#[command(
    name = "sagrada",
    version,
    about = "An open accelerator stack, from the silicon (emulated) to user space"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options that choose the machine.
#[derive(clap::Args, Debug, Clone, Default)]
struct MachineArgs {
    /// A TOML description of the machine (default: the built-in machine; see
    /// `sagrada topo --print-config`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Put a host bridge on the kernel's p2pdma whitelist (repeatable).
    #[arg(long, value_name = "HOST_BRIDGE")]
    whitelist: Vec<String>,
    /// Enable ACS P2P Request Redirect on a switch's downstream ports (repeatable).
    #[arg(long, value_name = "SWITCH")]
    acs_redirect: Vec<String>,
}

impl MachineArgs {
    fn config(&self) -> Result<TopologyConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                TopologyConfig::from_toml_str(&text).with_context(|| path.display().to_string())?
            }
            None => TopologyConfig::default_machine(),
        };
        for hb in &self.whitelist {
            config
                .set_p2p_whitelist(hb, true)
                .with_context(|| format!("--whitelist {hb}"))?;
        }
        for sw in &self.acs_redirect {
            config
                .set_acs_redirect(sw, true)
                .with_context(|| format!("--acs-redirect {sw}"))?;
        }
        Ok(config)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the machine: the PCIe tree with BARs, and the p2p distance matrix.
    Topo {
        #[command(flatten)]
        machine: MachineArgs,
        /// Print the built-in machine's description as TOML instead (a starting point
        /// for --config).
        #[arg(long, conflicts_with_all = ["config", "whitelist", "acs_redirect"])]
        print_config: bool,
    },
    /// A table of the SG1 accelerators (like hl-smi): bus, HBM, engines, firmware, link.
    Info {
        #[command(flatten)]
        machine: MachineArgs,
    },
    /// The main demo: the machine, then a walk through dma-buf sharing and the fabric.
    Demo {
        #[command(flatten)]
        machine: MachineArgs,
    },
    /// Assemble SG1 assembly into a kernel binary (.sgb).
    Asm {
        /// The assembly source.
        file: PathBuf,
        /// Where to write the binary (default: FILE with the extension .sgb).
        #[arg(short, long, value_name = "FILE.sgb")]
        output: Option<PathBuf>,
    },
    /// Disassemble a kernel binary into assembly that reassembles to the same bytes.
    Disasm {
        /// The kernel binary.
        file: PathBuf,
        /// Where to write the assembly (default: standard output).
        #[arg(short, long, value_name = "FILE.s")]
        output: Option<PathBuf>,
    },
    /// Compile an SGC kernel (docs/language.md) into a kernel binary (.sgb), or print
    /// its IR or assembly.
    Cc(cc_cmd::CcArgs),
    /// Run a kernel (.sgb, or .s assembled on the fly) on an SG1 and print its outputs
    /// and per-core counters.
    Run(run_cmd::RunArgs),
    /// Benchmarks, each printed beside its reference measured in the same run.
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
enum BenchCommand {
    /// DMA bandwidth through the fabric against host memcpy.
    Fabric {
        /// Bytes per transfer (suffixes K, M, G).
        #[arg(long, default_value = "64M", value_parser = bench::parse_size)]
        size: u64,
        /// Timed rounds (each times the reference and every transfer; medians are reported).
        #[arg(long, default_value_t = 9)]
        iterations: usize,
    },
    /// The SG1's DMA engines through the driver (H2D, D2H, D2D) against host memcpy,
    /// and the submit-to-completion latency of a one-NOP command submission.
    Dma {
        /// Bytes per copy (suffixes K, M, G).
        #[arg(long, default_value = "64M", value_parser = bench::parse_size)]
        size: u64,
        /// Timed rounds (each times the reference and every direction; medians are reported).
        #[arg(long, default_value_t = 9)]
        iterations: usize,
    },
    /// f32 GEMM on the compute cores (kernels/gemm.s) against native single-thread sgemm.
    Gemm(bench_compute::GemmArgs),
    /// One compute core's interpreter: scalar instructions/s and vmad lane-ops/s
    /// against the same work done natively.
    Core(bench_compute::CoreArgs),
    /// The SGC compiler: retired instructions of the seven demo kernels compiled at
    /// -O1 and -O0 against their hand-written assembly, and cold compile times.
    Cc(bench_cc::CcBenchArgs),
    /// RDMA WRITE, READ or SEND bandwidth nic0 -> nic1 into HBM (perftest's columns)
    /// against host memcpy, and p2p against the bounce path.
    Rdma(bench_rdma::RdmaArgs),
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line naming what was wrong and where; never a backtrace for a user's
            // mistake.
            eprintln!("sagrada: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Topo {
            print_config: true, ..
        } => {
            print!("{}", sagrada_hw_fabric::DEFAULT_MACHINE_TOML);
            Ok(())
        }
        Command::Topo { machine, .. } => topo::run(&machine.config()?),
        Command::Info { machine } => info::run(&machine.config()?),
        Command::Demo { machine } => demo::run(&machine.config()?),
        Command::Asm { file, output } => isa_cmd::asm(&file, output.as_deref()),
        Command::Disasm { file, output } => isa_cmd::disasm(&file, output.as_deref()),
        Command::Bench {
            which: BenchCommand::Fabric { size, iterations },
        } => bench::fabric(size, iterations),
        Command::Bench {
            which: BenchCommand::Dma { size, iterations },
        } => bench_dma::dma(size, iterations),
        Command::Run(args) => run_cmd::run(&args),
        Command::Cc(args) => cc_cmd::cc(&args),
        Command::Bench {
            which: BenchCommand::Gemm(args),
        } => bench_compute::gemm(&args),
        Command::Bench {
            which: BenchCommand::Core(args),
        } => bench_compute::core(&args),
        Command::Bench {
            which: BenchCommand::Rdma(args),
        } => bench_rdma::rdma(&args),
        Command::Bench {
            which: BenchCommand::Cc(args),
        } => bench_cc::cc(&args),
    }
}
