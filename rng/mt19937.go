package rng

// mt19937 is the 32-bit Mersenne Twister (Matsumoto and Nishimura, 1998), the
// engine behind PyTorch's CPU generator. Its output equals C++'s
// std::mt19937 for the same 32-bit seed.
type mt19937 struct {
	state [mtN]uint32
	next  int // index of the next state word to temper; mtN means regenerate
}

const (
	mtN         = 624
	mtM         = 397
	mtMatrixA   = 0x9908b0df
	mtUpperMask = 0x80000000
	mtLowerMask = 0x7fffffff
)

// seed initialises the state from a 32-bit seed with the reference
// initialisation recurrence.
func (m *mt19937) seed(s uint32) {
	m.state[0] = s
	for i := 1; i < mtN; i++ {
		prev := m.state[i-1]
		m.state[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	m.next = mtN
}

// twist regenerates the whole state block.
func (m *mt19937) twist() {
	st := &m.state
	for i := 0; i < mtN; i++ {
		y := st[i]&mtUpperMask | st[(i+1)%mtN]&mtLowerMask
		v := st[(i+mtM)%mtN] ^ y>>1
		if y&1 != 0 {
			v ^= mtMatrixA
		}
		st[i] = v
	}
	m.next = 0
}

// uint32 returns the next tempered 32-bit output.
func (m *mt19937) uint32() uint32 {
	if m.next >= mtN {
		m.twist()
	}
	y := m.state[m.next]
	m.next++
	y ^= y >> 11
	y ^= (y << 7) & 0x9d2c5680
	y ^= (y << 15) & 0xefc60000
	y ^= y >> 18
	return y
}
