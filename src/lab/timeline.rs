//! placeholder
use crate::cli::LabArgs;
pub fn run(_args: &LabArgs) -> Result<bool, std::io::Error> {
    Ok(false)
}
