//go:build race

package manager

// raceDetector: the race detector makes everything 5–10× slower; the
// scale tests then run at a reduced size (make test runs them at full size
// in a separate step without it).
const raceDetector = true
