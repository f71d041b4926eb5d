package nn

import "testing"

func TestArenaGetExact(t *testing.T) {
	a := NewArena()
	big := a.Get(200)
	a.Put(big)
	x := a.GetExact(100) // the free buffer of 200 is not taken
	if len(x) != 100 || cap(x) != 100 || &x[0] == &big[0] {
		t.Fatal("GetExact(100) took the free buffer of 200")
	}
	a.Put(x)
	y := a.GetExact(100)
	if &y[0] != &x[0] {
		t.Error("GetExact(100) did not reuse the free buffer of 100")
	}
	z := a.Get(150) // Get still reuses the buffer of 200
	if &z[0] != &big[0] {
		t.Error("Get(150) did not reuse the free buffer of 200")
	}
	if st := a.Stats(); st.Allocs != 2 || st.InUse != 4*(100+200) || st.Peak != st.InUse || st.Held != 4*300 {
		t.Errorf("stats %+v", st)
	}
	a.Put(y)
	a.Put(z)
	if st := a.Stats(); st.InUse != 0 {
		t.Errorf("after Put: %+v", st)
	}
	if a.GetExact(0) != nil {
		t.Error("GetExact(0) != nil")
	}
}
