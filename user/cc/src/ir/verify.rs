//! The IR verifier. (Being written.)

use super::Function;

/// What is wrong with a function: the first broken rule, in a sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct VerifyError(pub String);

/// Checks the IR's rules.
pub fn verify(_f: &Function) -> Result<(), VerifyError> {
    Ok(())
}
