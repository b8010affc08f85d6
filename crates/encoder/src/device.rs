//! Choosing the device a model runs on from a user's spec (`cpu`, `cuda`, `cuda:N`, `auto`).

use candle_core::Device;

use crate::error::{EncoderError, Result};

/// Whether this build can run on CUDA GPUs (the `cuda` feature).
pub const CUDA_BUILD: bool = cfg!(feature = "cuda");

/// The device named by `spec`:
/// - `cpu`;
/// - `cuda` or `cuda:N` (GPU 0 or N; needs a build with the `cuda` feature and a GPU);
/// - `auto`: GPU 0 when this build has CUDA and a GPU can be opened, else the CPU.
pub fn parse_device(spec: &str) -> Result<Device> {
    let bad = |message: String| EncoderError::InvalidArgument(message);
    match spec.trim() {
        "cpu" => Ok(Device::Cpu),
        "auto" => {
            if !CUDA_BUILD {
                return Ok(Device::Cpu);
            }
            // A CUDA build on a machine without a usable GPU runs on the CPU.
            match Device::new_cuda(0) {
                Ok(device) => Ok(device),
                Err(e) => {
                    tracing::info!("device 'auto': no usable GPU ({e}); using the CPU");
                    Ok(Device::Cpu)
                }
            }
        }
        other => {
            let ordinal = match other.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => rest
                    .strip_prefix(':')
                    .and_then(|n| n.parse::<usize>().ok())
                    .ok_or_else(|| {
                        bad(format!(
                            "device '{other}': expected cpu, auto, cuda or cuda:N (N a GPU number)"
                        ))
                    })?,
                None => {
                    return Err(bad(format!(
                        "device '{other}': expected cpu, auto, cuda or cuda:N"
                    )))
                }
            };
            if !CUDA_BUILD {
                return Err(bad(format!(
                    "device '{other}': this splade build has no CUDA support; rebuild with \
                     `cargo build --release --features cuda` (see TRAINING.md)"
                )));
            }
            Device::new_cuda(ordinal).map_err(|e| bad(format!("device '{other}': {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_auto_and_rejects_the_rest_clearly() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        // A build without CUDA always resolves auto to the CPU.
        if !CUDA_BUILD {
            assert!(parse_device("auto").unwrap().is_cpu());
        }
        for bad in ["gpu", "cuda:x", "cuda1", "metal"] {
            let err = parse_device(bad).unwrap_err().to_string();
            assert!(err.contains(bad), "{err}");
        }
        if !CUDA_BUILD {
            let err = parse_device("cuda:0").unwrap_err().to_string();
            assert!(err.contains("--features cuda"), "{err}");
        }
    }
}
