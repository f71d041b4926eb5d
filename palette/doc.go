// Package palette compresses weights into n-bit look-up tables
// ("palettization", as Core ML calls it) and expands them back into
// float32 rows at run time.
//
// A palettized tensor of shape S stores, for each of its elements, an
// n-bit index (n in 1, 2, 3, 4, 6, 8) into a table of 2^n values. There is
// one table for the whole tensor, or one per group of G consecutive output
// channels (rows along axis 0: rows [g*G, (g+1)*G) use table g). When G
// does not divide S[0], the last group holds the remaining S[0] mod G rows;
// there are ceil(S[0]/G) tables (one when G >= S[0]). Tables are stored as
// float16 (the default, as Core ML does) or float32, sorted ascending; a
// group with fewer than 2^n distinct values repeats its last entry.
//
// # Modes
//
//   - kmeans: the table holds the globally optimal 1-D k-means centroids of
//     the group's values (see below), each index the nearest stored entry.
//   - uniform: 2^n evenly spaced levels from the group's minimum to its
//     maximum, each index the nearest level.
//   - unique: the group's distinct values, so the compression is lossless;
//     a group with more than 2^n distinct values is an error.
//
// Indices always point to the nearest stored table entry (the table is
// sorted; a value exactly halfway between two entries takes the lower
// index). With exact centroids this is the k-means assignment itself; with
// float16-rounded centroids it is the assignment that minimises the error
// of what is actually stored.
//
// # What is clustered
//
// The kmeans and uniform modes work on the float16-rounded values of the
// weights, as Core ML does: float32 inputs are rounded to float16 first.
// An fp16 tensor has at most 63,488 finite distinct values (Stable
// Diffusion 1.5 tensors: 5–21 thousand), so a 65,536-bin histogram of the
// bit patterns yields the distinct values and their counts in one pass,
// and the clustering runs on those weighted points, never on the raw
// values. Negative zero counts as zero. Unique mode on float32 input works
// on the exact float32 values instead (the table must then be float32
// unless every value is a float16 value). A tensor holding NaN or Inf is
// refused, as is a float32 value beyond the float16 range in the other
// modes.
//
// # Exact 1-D k-means
//
// KMeans1D and the kmeans mode solve weighted k-means in one dimension
// exactly, with the dynamic programme of Wu (1991) as presented by
// Grønlund et al. (2017), the one the kmeans1d package solves.
// With the m distinct values sorted, x_1 < ... < x_m, with weights w_i, an
// optimal clustering is a partition into contiguous runs. Let C(i, j) be
// the weighted sum of squared distances of x_{i+1..j} to their weighted
// mean, computed in O(1) from prefix sums of w, w·x and w·x² (values
// centred on the overall mean, for accuracy). The least cost of the first
// j values in l clusters is
//
//	D(1, j) = C(0, j)
//	D(l, j) = min over l-1 <= i < j of D(l-1, i) + C(i, j)
//
// and the answer is D(k, m), traced back through the stored minimising i,
// opt(l, j) (the smallest one). C satisfies the quadrangle (Monge)
// inequality, so opt(l, j) <= opt(l, j+1) and opt(l-1, j) <= opt(l, j).
// Each layer l is computed by divide and conquer over j: scan the
// candidates of the middle j, from max(opt(l-1, j), lower bound) to the
// upper bound, then solve the left half with the upper bound lowered to
// the middle's opt and the right half with the lower bound raised to it.
// That is O(m log m) per layer (O(k·m·log m) time in all, k = 2^n) and
// O(k·m) memory for the back-pointers; the bound from the previous layer
// cuts the scans by about a third in practice (8.5 instead of 13 candidates
// per j for k = 64, m = 20,000). kmeans1d finds each layer's minima with
// SMAWK instead, O(m) per layer; measured here it evaluates as many
// candidates (9.8 per j) with more overhead, so it is not used. Large
// layers (m >= 4096) are split over two goroutines. Lloyd's algorithm
// would only find a local optimum.
//
// # Bit order of packed indices
//
// The indices of a tensor are numbered in row-major order over the whole
// tensor (element i of the flattened tensor has index i) and packed into
// ceil(count·n/8) bytes as one little-endian bit stream: index i occupies
// bits [i·n, (i+1)·n) of the stream, least significant bit first, where bit
// b of the stream is bit b mod 8 (value 1<<(b mod 8)) of byte b/8. So for
// n = 8 byte i is index i; for n = 4 byte j holds index 2j in its low
// nibble and index 2j+1 in its high nibble; for n = 2 index 4j+t is
// (byte j >> 2t) & 3; for n = 1 index 8j+t is (byte j >> t) & 1; for
// n = 3 and n = 6 indices span byte boundaries: three bytes b0, b1, b2
// read as the 24-bit word w = b0 | b1<<8 | b2<<16 hold 8 3-bit indices
// (index t is (w >> 3t) & 7) or 4 6-bit indices ((w >> 6t) & 63). Rows are
// not padded; only the last byte of the tensor is, with zero bits.
//
// # Expansion
//
// Tensor implements weights.Tensor: ReadRows expands a block of output
// channels into float32 through its group's table, with no allocation and
// a decode loop specialised for each width (8 values from one n-byte word).
// It also implements weights.PanelReader: ReadPanel expands a block of rows
// and columns straight into the transposed panel layout of a packed GEMM,
// so kernels expand a weight in cache-sized blocks as they use it. On
// amd64 with AVX-512 (F and BW) ReadPanel works 16 rows by 16 columns at a
// time in registers: a byte shuffle, a variable shift and a mask cut the
// indices out of the bit stream, one permute (up to 16 entries), two and a
// blend (64) or a gather (256) look them up, and a register transposition
// writes the panel; rows that do not start at the same bit offset within a
// byte, the build tag purego and PIGMENT_NOASM=1 use the portable loop.
// New rebuilds a Tensor from stored tables and indices, checking every
// size.
//
// # Error metrics
//
// PSNR is apple/ml-stable-diffusion's correctness metric (pass floor
// 35 dB), SQNR the plain signal-to-noise ratio, both in dB.
package palette
