/* The live preview of a schedule being edited (its own page, or inline on its job's page): its
   description and next occurrences follow the fields as they change, from
   admin:schedules_schedule_preview, which reads them with the admin's own form and previews
   them as the saved page does (daylight saving moves marked). Without this script the page
   shows the saved schedule's preview and works the same. */
'use strict';
{
    const FIELDS = [
        'kind', 'interval_seconds', 'expression', 'timezone', 'dst_gap', 'dst_repeat',
        'solar_event', 'latitude', 'longitude', 'solar_offset_seconds', 'anchor_0', 'anchor_1',
        'start_at_0', 'start_at_1', 'end_at_0', 'end_at_1', 'max_runs', 'jitter_seconds',
        'exclusion_calendars', 'paused'
    ];
    const WAIT_MS = 250;  // after the last keystroke
    const timers = new WeakMap();
    const latest = new WeakMap();

    // The prefix of a schedule field's name ('' on its own page, 'schedules-0-' inline), or null.
    function prefixOf(input) {
        const name = input.name || '';
        for (const field of FIELDS) {
            if (name === field) {
                return '';
            }
            if (name.endsWith('-' + field)) {
                return name.slice(0, name.length - field.length);
            }
        }
        return null;
    }

    async function refresh(scope, prefix) {
        const live = scope.querySelector('.schedule-live');
        if (!live) {
            return;
        }
        const params = new URLSearchParams();
        for (const field of FIELDS) {
            const input = scope.querySelector('[name="' + prefix + field + '"]');
            if (!input) {
                continue;
            }
            if (input.multiple) {
                for (const option of input.selectedOptions) {
                    params.append(field, option.value);
                }
            } else if (input.type === 'checkbox') {
                if (input.checked) {
                    params.set(field, 'on');
                }
            } else {
                params.set(field, input.value);
            }
        }
        if (live.dataset.schedule) {
            params.set('schedule', live.dataset.schedule);
        }
        const asked = live.dataset.previewUrl + '?' + params.toString();
        latest.set(live, asked);
        const upcoming = live.querySelector('.schedule-upcoming');
        let data;
        try {
            const response = await fetch(asked, {headers: {Accept: 'application/json'}, credentials: 'same-origin'});
            if (!response.ok) {
                throw new Error(response.status + ' ' + response.statusText);
            }
            data = await response.json();
        } catch (error) {
            upcoming.textContent = 'No preview: ' + error.message;
            return;
        }
        if (latest.get(live) !== asked) {
            return;  // a later edit's answer is on its way
        }
        upcoming.innerHTML = data.html;  // built with the server's escaping (format_html)
        if (data.description) {
            for (const description of scope.querySelectorAll('.schedule-description')) {
                description.textContent = data.description;
            }
        }
        upcoming.dispatchEvent(new CustomEvent('schedule-preview', {bubbles: true, detail: data}));
    }

    function onEdit(event) {
        const prefix = prefixOf(event.target);
        if (prefix === null) {
            return;
        }
        const scope = event.target.closest('.inline-related') || event.target.form;
        if (!scope) {
            return;
        }
        clearTimeout(timers.get(scope));
        timers.set(scope, setTimeout(function() { refresh(scope, prefix); }, WAIT_MS));
    }

    document.addEventListener('input', onEdit);
    document.addEventListener('change', onEdit);
}
