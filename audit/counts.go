package audit

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// NoAnswer is the Answers key of requests that got no answer.
const NoAnswer = 0

// Answers counts requests by the status code of their answer; NoAnswer (0) counts those
// that got none. In JSON the keys are the codes as text and "none" for NoAnswer, as state
// files of schema 1 wrote them.
type Answers map[int]uint64

// MarshalJSON writes the counts with text keys, "none" for NoAnswer.
func (a Answers) MarshalJSON() ([]byte, error) {
	m := make(map[string]uint64, len(a))
	for k, n := range a {
		m[answerKey(k)] = n
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON writes.
func (a *Answers) UnmarshalJSON(b []byte) error {
	var m map[string]uint64
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	out := make(Answers, len(m))
	for k, n := range m {
		code := NoAnswer
		if k != "none" {
			v, err := strconv.Atoi(k)
			if err != nil || v < 100 || v > 999 {
				return fmt.Errorf("answers: %q is not a status code", k)
			}
			code = v
		}
		out[code] += n
	}
	*a = out
	return nil
}

// Refused returns how many answers had a status of 300 or more.
func (a Answers) Refused() uint64 {
	var n uint64
	for k, c := range a {
		if k >= 300 {
			n += c
		}
	}
	return n
}

// Codes returns the status codes counted, in order, NoAnswer last.
func (a Answers) Codes() []int {
	keys := make([]int, 0, len(a))
	for k := range a {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 0 && keys[0] == NoAnswer {
		keys = append(keys[1:], NoAnswer)
	}
	return keys
}

// Format renders the counts as "200" + sep + "3" pairs joined by join, codes in order,
// "none" for NoAnswer.
func (a Answers) Format(sep, join string) string {
	codes := a.Codes()
	parts := make([]string, len(codes))
	for i, k := range codes {
		parts[i] = answerKey(k) + sep + strconv.FormatUint(a[k], 10)
	}
	return strings.Join(parts, join)
}

// Refusal returns the most frequent status of 300 or more (the lowest on a tie), 0 when
// none.
func (a Answers) Refusal() int {
	best, bestN := 0, uint64(0)
	for k, n := range a {
		if k >= 300 && (n > bestN || (n == bestN && k < best)) {
			best, bestN = k, n
		}
	}
	return best
}

func answerKey(code int) string {
	if code == NoAnswer {
		return "none"
	}
	return strconv.Itoa(code)
}
