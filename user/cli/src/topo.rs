//! `sagrada topo`.

use anyhow::Result;
use sagrada::Machine;
use sagrada_hw_fabric::{TopologyConfig, render_p2p_matrix, render_tree};

pub fn run(config: &TopologyConfig) -> Result<()> {
    let machine = Machine::new(config)?;
    print!("{}", render_tree(machine.fabric()));
    println!();
    print!("{}", render_p2p_matrix(machine.fabric()));
    Ok(())
}
