"""What every interop script takes (train_parity.py, make_model_fixtures.py, reference_control.py): the layers it
covers by default, the seqlab binary and the folder of reference snapshots. Imports nothing beyond the standard
library, so the scripts can parse their arguments before torch is loaded."""

LAYERS = ["attention", "s4", "s4d", "mamba", "gla", "deltanet", "deltaproduct", "gated_deltanet", "retnet", "hgrn2", "mamba2", "fox", "rat", "gam", "mlstm"]

# Options without which a layer cannot be built at the scripts' width 16 (Mamba-2's default head_dim 64 does not divide
# expand x 16 = 32).
WIDTH_16_OPTIONS = {"mamba2": {"head_dim": "8", "d_state": "16"}}


def add_tool_arguments(parser):
    parser.add_argument("--seqlab", required=True, help="the seqlab binary")
    parser.add_argument("--refsrc", required=True, help="folder with the unpacked reference snapshots (s4/, RAT/, gam/, xlstm/)")
