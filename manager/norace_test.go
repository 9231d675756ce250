//go:build !race

package manager

const raceDetector = false
