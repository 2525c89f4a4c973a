// Nothing of its own: the spanscope_ops shared library is spanscope_kernels linked whole, so its
// TORCH_LIBRARY(spanscope) registration runs when Python loads it (torch.ops.load_library).
