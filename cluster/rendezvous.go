package cluster

// Rendezvous returns the name with the highest score for key (highest random weight hashing):
// adding or removing a name moves only the keys that name wins or held. "" for no names. It is
// Node.Home over a given set of members (pins aside).
func Rendezvous(names []string, key [20]byte) string {
	best, bestScore := "", uint64(0)
	for _, name := range names {
		if s := score(name, key); best == "" || s > bestScore || (s == bestScore && name < best) {
			best, bestScore = name, s
		}
	}
	return best
}

// score hashes name and key with FNV-1a and mixes the result (splitmix64's finaliser), so that
// names differing in one character still spread keys evenly.
func score(name string, key [20]byte) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for i := 0; i < len(name); i++ {
		h = (h ^ uint64(name[i])) * prime
	}
	h = (h ^ 0xff) * prime // separates name from key
	for _, b := range key {
		h = (h ^ uint64(b)) * prime
	}
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	h ^= h >> 31
	return h
}
