package manager

// RaceDetector tells the external tests (package manager_test) whether the
// race detector is on.
const RaceDetector = raceDetector
