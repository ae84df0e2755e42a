package container

import (
	"os"
	"path/filepath"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadCgroupStats(t *testing.T) {
	v1 := t.TempDir()
	writeFiles(t, v1, map[string]string{
		"memory/memory.usage_in_bytes": "1000\n",
		"memory/memory.stat":           "total_rss 300\ntotal_inactive_file 400\ntotal_pgfault 7\ntotal_pgmajfault 1\n",
		"cpuacct/cpuacct.usage":        "123456\n",
	})
	var st Stats
	if err := readCgroupStats(map[string]string{"memory": filepath.Join(v1, "memory"), "cpuacct": filepath.Join(v1, "cpuacct")}, &st); err != nil {
		t.Fatal(err)
	}
	if st.MemoryUsage != 1000 || st.MemoryWorkingSet != 600 || st.MemoryRSS != 300 || st.PageFaults != 7 || st.MajorPageFaults != 1 || st.CPUUsageNanos != 123456 {
		t.Errorf("v1 stats: %+v", st)
	}

	v2 := t.TempDir()
	writeFiles(t, v2, map[string]string{
		"memory.current": "500\n",
		"memory.stat":    "anon 200\ninactive_file 600\npgfault 3\npgmajfault 0\n",
		"cpu.stat":       "usage_usec 42\nuser_usec 40\n",
	})
	st = Stats{}
	if err := readCgroupStats(map[string]string{"": v2}, &st); err != nil {
		t.Fatal(err)
	}
	// Working set never goes below zero when inactive file pages exceed usage.
	if st.MemoryUsage != 500 || st.MemoryWorkingSet != 0 || st.MemoryRSS != 200 || st.CPUUsageNanos != 42000 {
		t.Errorf("v2 stats: %+v", st)
	}
	if err := readCgroupStats(map[string]string{}, &st); err == nil {
		t.Error("no cgroup: want an error")
	}
}

func TestDiskUsageCountsHardLinksOnce(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 64*1024)
	if err := os.WriteFile(filepath.Join(dir, "a"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(dir, "c")); err != nil {
		t.Fatal(err)
	}
	bytes, inodes, err := diskUsage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if inodes != 3 { // dir, a (b is the same inode), c
		t.Errorf("inodes = %d, want 3", inodes)
	}
	if bytes < 64*1024 || bytes > 2*64*1024 {
		t.Errorf("bytes = %d, want about 64 KiB", bytes)
	}
}

func TestParseNetDev(t *testing.T) {
	data := []byte(`Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0
  eth0:    5000      40    1    0    0     0          0         0     3000      30    2    0    0     0       0          0
`)
	got := parseNetDev(data)
	if len(got) != 1 || got[0] != (InterfaceStats{Name: "eth0", RxBytes: 5000, RxErrors: 1, TxBytes: 3000, TxErrors: 2}) {
		t.Errorf("parseNetDev = %+v", got)
	}
}
